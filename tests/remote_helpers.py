"""Helpers of the remote watch tests."""

from __future__ import annotations

import socket


def free_port_base(count: int = 4) -> int:
    """A port from which ``count`` consecutive loopback ports are free now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        held = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no free run of loopback ports")
