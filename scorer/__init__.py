"""The scorer worker: picks the rogue processes of each snapshot and scores them (seed rules)."""
