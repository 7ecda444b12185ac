"""The numbered schema migrations, one set per SQL dialect.

``storage/migrations/sqlite/`` and ``storage/migrations/postgres/`` hold the same
steps under the same numbers and names (``0001_init.sql``, ``0002_....sql``, ...):
step N is one change of the schema, written once in each dialect. Two plain-SQL
twins rather than one file with dialect variants, because the dialects differ in
more than type names (identity columns, ``ALTER TABLE`` forms, partial indexes) and
a translation layer would hide the SQL that really runs; a test checks that both
sets list the same steps. Each store applies a step in one transaction together
with the record of its version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = ["DIALECTS", "Dialect", "Migration", "load_migrations"]

Dialect = Literal["sqlite", "postgres"]
DIALECTS: tuple[Dialect, ...] = ("sqlite", "postgres")

_MIGRATION_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``version`` is the schema version after it."""

    version: int
    name: str
    sql: str


def load_migrations(dialect: Dialect = "sqlite") -> list[Migration]:
    """The packaged migrations of ``dialect``, in order; versions must run 1, 2, 3, ..."""
    directory = resources.files(__package__ or "storage").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in directory.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(
                f"migration {dialect}/{migration.name} breaks the sequence "
                f"(expected {expected:04d}_*.sql)"
            )
    return found
