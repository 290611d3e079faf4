"""The supervisor: the long-running program `pmctl up` becomes (``python -m supervisor``).

It starts the Procfile's workers, restarts the ones that die or hang, and answers `pmctl status`
and `pmctl down` over ZeroMQ. It is its own package, beside ``cli`` (the commands people type),
so the process that runs for days loads only what it needs; ``cli`` imports from here only the
instance lock (to tell whether a supervisor runs).
"""
