"""Long lists cut into the pieces one statement sends: an ``IN (...)`` list, or the rows of
an executemany or a multi-row ``VALUES``, of at most :data:`CHUNK` items each, so that no
statement outgrows a database's limit on parameters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

#: Most items sent in one statement.
CHUNK = 1000


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
