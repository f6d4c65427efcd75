"""Row checks GX cannot express (a file against the registry, or across its rows), kept as SQL files.

A module's checks are in the `.sql` file beside it (`registry/checks.sql` beside `registry/checks.py`):
named statements, each after a line `-- name: <name>`. `{@other}` includes the statement `other` of the
same file, so a fragment two checks share is written once. A check is one SELECT whose rows (upload,
row, column, rule, value, message, severity) go into `intake.row_errors`; its placeholders (`{upload}`,
`{checked}`, ...) are filled with `psycopg2.sql` literals and identifiers, never with a user's string.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import psycopg2.extensions
from psycopg2 import sql

ROW_ERRORS_INSERT = ("INSERT INTO intake.row_errors (upload_id, row_number, column_name, rule, value, message,"
                     " severity)\n")
_NAME = re.compile(r"^-- name: (\w+)[ \t]*$", re.M)
_INCLUDE = re.compile(r"\{@(\w+)\}")


def beside(module_file: str) -> dict[str, str]:
    """The named statements of the `.sql` file beside a module (pass the module's `__file__`)."""
    return statements(Path(module_file).with_suffix(".sql"))


@functools.cache
def statements(path: Path) -> dict[str, str]:
    parts = _NAME.split(path.read_text())
    written = {name: text.strip() + "\n" for name, text in zip(parts[1::2], parts[2::2], strict=True)}

    def expand(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in seen:
            raise ValueError(f"{path.name}: {name} includes itself")
        if name not in written:
            raise KeyError(f"{path.name}: no statement {name}")
        return _INCLUDE.sub(lambda found: _without_comments(expand(found.group(1), (*seen, name))), written[name])

    return {name: expand(name) for name in written}


def _without_comments(fragment: str) -> str:
    return "\n".join(line for line in fragment.splitlines() if not line.lstrip().startswith("--"))


def run(cur: psycopg2.extensions.cursor, check: str, **parts: sql.Composable) -> None:
    """One check over the whole checked table: its rows become the upload's row errors."""
    cur.execute(sql.SQL(ROW_ERRORS_INSERT + check).format(**parts))
