"""The PostgreSQL driver's cursor, with ``description`` made when it is read.

psycopg builds a ``Column`` for each column of a result every time ``cursor.description`` is asked for (its name
decoded, its type looked up: psycopg/psycopg#446). SQLAlchemy asks once per statement, and for a statement it has
run before uses no more than whether the description is ``None``: its result columns are cached with the
compiled statement. The completion's read has 57 columns, so each completion built 57 ``Column`` objects it never
looked at, about a third of the read's CPU in SQLAlchemy and psycopg (issue 16).

:class:`Cursor` answers ``description`` with a :class:`Description` that builds the same ``Column`` objects when
one is first read, from the result as it was when asked for (a later statement on the cursor does not change it).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import Column
from psycopg.pq import ExecStatus

#: Results that have rows (psycopg's own test, ``BaseCursor.description``), even with no column (``SELECT ;``).
_HAS_ROWS = frozenset((ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK))


class _Result:
    """What psycopg's ``Column`` reads of its cursor, held as it was when the description was asked for."""

    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self.pgresult, self._encoding, self.adapters = cursor.pgresult, cursor._encoding, cursor.adapters


class Description(Sequence):
    """A result's columns, as psycopg describes them, each made when the description is first read."""

    __slots__ = ("_result", "_length", "_columns")

    def __init__(self, cursor: psycopg.Cursor, length: int) -> None:
        self._result, self._length, self._columns = _Result(cursor), length, None

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> Any:
        if self._columns is None:
            self._columns = [Column(self._result, i) for i in range(self._length)]  # type: ignore[arg-type]
            self._result = None
        return self._columns[index]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))


class Cursor(psycopg.Cursor):
    """psycopg's cursor, its ``description`` a :class:`Description`."""

    @property
    def description(self) -> Description | None:
        result = self.pgresult
        if result and (result.nfields or result.status in _HAS_ROWS):
            return Description(self, result.nfields)
        return None
