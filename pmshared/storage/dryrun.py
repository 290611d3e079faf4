"""One transaction that a dry run rolls back: prune reports exactly what a real run removes by
executing the very same statements and undoing them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import apsw


class _RollBack(Exception):
    """Raised at the end of a dry run's transaction so ``with conn`` rolls it back."""


@contextmanager
def transaction(conn: apsw.Connection, *, dry_run: bool) -> Iterator[None]:
    """``with conn:`` whose changes are kept only when not ``dry_run``."""
    try:
        with conn:
            yield
            if dry_run:
                raise _RollBack
    except _RollBack:
        pass
