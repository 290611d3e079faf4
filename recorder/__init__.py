"""The recorder worker: the single writer of records (events, samples, pauses, forensics) to SQLite.

Binds PULL "record"; decodes each frame with the endpoint's codec (bad frames are logged, counted
and dropped); writes what is queued in one transaction per batch through ``pmshared.storage``;
keeps batches that hit a busy or full database in a bounded retry queue; prunes once a day.
"""
