"""Shared core of pause-monitor: everything that crosses a process boundary.

Message types, the endpoint table and socket factory, configuration, paths and the worker runtime
live here. This package imports no worker package; every worker imports it.
"""

__version__ = "0.1.0"
