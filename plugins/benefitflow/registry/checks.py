"""Registry checks GX cannot express: they compare an upload with the registry and across rows.

Each check is one INSERT ... SELECT into `intake.row_errors` over the whole checked table; the SQL is
in `checks.sql` beside this module. Exact duplicates and broken household rules are `critical` (the
row is blocked); likely duplicates are `warning` (the checker sees them and decides), found under the duplicate
rules (`duplicate_rules.yaml`) as the registry-wide `duplicates_search` finds them.
"""

from __future__ import annotations

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.registry import duplicate_rules
from benefitflow.registry.schema import HOUSEHOLD_COLUMNS
from benefitflow.workflows import row_checks

CHECKS = row_checks.beside(__file__)
HOUSEHOLD_RULES = ("more_than_one_head", "no_head", "more_than_one_primary_recipient", "no_primary_recipient",
                   "role_required", "group_code_required")
HOUSEHOLDS_BROKEN_AT_COMMIT = CHECKS["households_broken_at_commit"]  # run by the commit (parameter commit_id)
_RECIPIENT_INFO = "CASE {0} WHEN 'PRIMARY' THEN '1' WHEN 'SECONDARY' THEN '2' END"


def run_all(cur: psycopg2.extensions.cursor, upload_id: int, checked: str, *, mode: str, header: list[str],
            whole_households: bool) -> None:
    table = sql.Identifier(checked)
    parts = {"upload": sql.Literal(upload_id), "checked": table}
    if mode == "update":
        row_checks.run(cur, CHECKS["unknown_ids"], **parts)
    row_checks.run(cur, CHECKS["national_id_taken"], **parts)
    _likely_duplicates(cur, parts)
    if mode == "update" and not set(HOUSEHOLD_COLUMNS) & set(header):
        return
    _collect_households(cur, table, mode, header)
    for rule in HOUSEHOLD_RULES:
        row_checks.run(cur, CHECKS[rule], **parts)
    if whole_households:
        row_checks.run(cur, CHECKS["household_incomplete"], **parts)


def _likely_duplicates(cur: psycopg2.extensions.cursor, parts: dict[str, sql.Composable]) -> None:
    """Rows like a person of the registry, or like an earlier row: under the duplicate rules, as a search compares
    (the upload's block keys against registry.duplicate_keys, one join per block the rules use)."""
    rules = duplicate_rules.load()
    keys = sql.SQL(", ").join(sql.SQL("keys[{}] AS {}").format(sql.Literal(number), sql.Identifier(block))
                              for number, block in enumerate(duplicate_rules.BLOCKS, start=1))
    cur.execute(sql.SQL(CHECKS["upload_duplicate_keys"]).format(**parts, keys=keys))
    cur.execute("ANALYZE upload_duplicate_keys")
    literal = sql.SQL("{}::jsonb").format(sql.Literal(rules.as_json()))
    # Each block's joins keep their hash tables until the statement ends, seven at once: at the server's work_mem a
    # million-row file's check peaked at 1.9 GB. At 16 MB each spills to disk instead.
    cur.execute("SET LOCAL work_mem = '16MB'")
    for check, shared in (("likely_duplicates_in_registry", "shared_with_registry"),
                          ("likely_duplicates_in_file", "shared_within_file")):
        union = sql.SQL("\nUNION ALL\n").join(
            sql.SQL(CHECKS[shared]).format(block=sql.Identifier(block), rules=literal) for block in rules.blocks)
        row_checks.run(cur, CHECKS[check], **parts, rules=literal, shared=union)
    cur.execute("RESET work_mem")


def _collect_households(cur: psycopg2.extensions.cursor, table: sql.Identifier, mode: str, header: list[str]) -> None:
    """Two temporary tables the household rules read (dropped at commit).

    `upload_members`: each row's household, role and recipient type once the upload is
    applied: the file's value, or in update mode the registry's when the file does not carry
    the column; with the household the person leaves, if any. `upload_households`: every
    household the upload touches, counted with the registry members the file leaves alone.
    """
    def effective(column: str, file_value: str, registry_value: str) -> sql.SQL:
        return sql.SQL(file_value if mode == "create" or column in header else registry_value)

    cur.execute(sql.SQL(CHECKS["upload_members"]).format(
        checked=table,
        group_code=effective("group_code", "c.group_code", "r.household_code"),
        role=effective("individual_role", "c.role", "r.role"),
        role_value=effective("individual_role", "c.individual_role", "r.role"),
        recipient_type=effective("recipient_info", "c.recipient_type", "r.recipient_type"),
        recipient_value=effective("recipient_info", "c.recipient_info", _RECIPIENT_INFO.format("r.recipient_type")),
        registry_match=sql.SQL("r.individual_id = c.individual_id" if mode == "update" else "false"),
    ))
    cur.execute(CHECKS["upload_households"])
    cur.execute("ANALYZE upload_members; ANALYZE upload_households")
