"""Registry checks GX cannot express: they compare an upload with the registry and across rows.

Each check is one INSERT ... SELECT into `intake.row_errors` over the whole checked table.
Exact duplicates and broken household rules are `critical` (the row is blocked); likely
duplicates are `warning` (the checker sees them and decides).
"""

from __future__ import annotations

import psycopg2.extensions
from psycopg2 import sql

LIKELY_DUPLICATE_SIMILARITY = 0.6  # pg_trgm similarity of "first last", with the same dob and location

_INSERT = "INSERT INTO intake.row_errors (upload_id, row_number, column_name, rule, value, message, severity) "


def run_all(cur: psycopg2.extensions.cursor, upload_id: int, checked: str, *, mode: str, whole_households: bool) -> None:
    table = sql.Identifier(checked)
    if mode == "update":
        _run(cur, UNKNOWN_IDS, upload_id, table)
    _run(cur, NATIONAL_ID_TAKEN, upload_id, table)
    _run(cur, LIKELY_DUPLICATES_IN_REGISTRY, upload_id, table, similarity=LIKELY_DUPLICATE_SIMILARITY)
    _run(cur, LIKELY_DUPLICATES_IN_FILE, upload_id, table, similarity=LIKELY_DUPLICATE_SIMILARITY)
    if mode == "create":
        for check in HOUSEHOLD_RULES:
            _run(cur, check, upload_id, table)
        if whole_households:
            _run(cur, HOUSEHOLD_INCOMPLETE, upload_id, table)


def _run(cur: psycopg2.extensions.cursor, query: str, upload_id: int, table: sql.Identifier, **literals: object) -> None:
    values = {name: sql.Literal(value) for name, value in literals.items()}
    cur.execute(sql.SQL(_INSERT + query).format(upload=sql.Literal(upload_id), checked=table, **values))


UNKNOWN_IDS = """
SELECT {upload}, c.row_number, 'id', 'id:unknown_individual', c.id, 'no individual with this id in the registry', 'critical'
FROM intake.{checked} c
WHERE c.individual_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ledger.individual_versions v WHERE v.individual_id = c.individual_id)
"""

NATIONAL_ID_TAKEN = """
SELECT DISTINCT ON (c.row_number) {upload}, c.row_number, 'national_id', 'national_id:already_in_registry', c.national_id,
       format('this national id already belongs to %s %s (id %s) in the registry', r.first_name, r.last_name,
              r.individual_id),
       'critical'
FROM intake.{checked} c
JOIN registry.individuals r ON r.national_id = c.national_id
WHERE c.individual_id IS NULL OR r.individual_id <> c.individual_id
ORDER BY c.row_number
"""

_FULL_NAME = "lower(coalesce({0}.first_name, '') || ' ' || coalesce({0}.last_name, ''))"

LIKELY_DUPLICATES_IN_REGISTRY = f"""
SELECT DISTINCT ON (c.row_number) {{upload}}, c.row_number, 'first_name', 'likely_duplicate',
       c.first_name || ' ' || c.last_name,
       format('looks like %s %s (born %s, location %s), id %s, already in the registry', r.first_name, r.last_name,
              r.dob, coalesce(r.location_code, 'none'), r.individual_id),
       'warning'
FROM intake.{{checked}} c
JOIN registry.individuals r ON r.dob = c.dob__date AND coalesce(r.location_code, '') = coalesce(c.location_code, '')
WHERE similarity({_FULL_NAME.format('r')}, {_FULL_NAME.format('c')}) >= {{similarity}}
  AND (c.individual_id IS NULL OR r.individual_id <> c.individual_id)
  AND (c.national_id IS NULL OR r.national_id IS NULL OR c.national_id <> r.national_id)
ORDER BY c.row_number, similarity({_FULL_NAME.format('r')}, {_FULL_NAME.format('c')}) DESC
"""

LIKELY_DUPLICATES_IN_FILE = f"""
SELECT DISTINCT ON (b.row_number) {{upload}}, b.row_number, 'first_name', 'likely_duplicate',
       b.first_name || ' ' || b.last_name,
       format('looks like row %s of this file (%s %s, born %s, location %s)', a.row_number, a.first_name,
              a.last_name, a.dob__date, coalesce(a.location_code, 'none')),
       'warning'
FROM intake.{{checked}} a
JOIN intake.{{checked}} b
  ON a.dob__date = b.dob__date AND coalesce(a.location_code, '') = coalesce(b.location_code, '')
 AND a.row_number < b.row_number
WHERE similarity({_FULL_NAME.format('a')}, {_FULL_NAME.format('b')}) >= {{similarity}}
  AND (a.national_id IS NULL OR b.national_id IS NULL OR a.national_id <> b.national_id)
ORDER BY b.row_number, a.row_number
"""

# Households: the file's members counted together with the members already in the registry.
_HOUSEHOLDS = """
WITH in_file AS (
    SELECT group_code,
           count(*) FILTER (WHERE role = 'HEAD') AS heads,
           count(*) FILTER (WHERE recipient_type = 'PRIMARY') AS primaries,
           string_agg(row_number::text, ', ' ORDER BY row_number) FILTER (WHERE role = 'HEAD') AS head_rows,
           string_agg(row_number::text, ', ' ORDER BY row_number) FILTER (WHERE recipient_type = 'PRIMARY')
               AS primary_rows
    FROM intake.{checked} WHERE group_code IS NOT NULL GROUP BY group_code
), in_registry AS (
    SELECT household_code AS group_code,
           count(*) FILTER (WHERE role = 'HEAD') AS heads,
           count(*) FILTER (WHERE recipient_type = 'PRIMARY') AS primaries
    FROM registry.individuals WHERE household_code IN (SELECT group_code FROM in_file) GROUP BY household_code
), households AS (
    SELECT f.group_code, f.heads + coalesce(r.heads, 0) AS heads, f.primaries + coalesce(r.primaries, 0) AS primaries,
           f.head_rows, f.primary_rows, coalesce(r.heads, 0) AS registry_heads,
           coalesce(r.primaries, 0) AS registry_primaries
    FROM in_file f LEFT JOIN in_registry r USING (group_code)
)
"""

HOUSEHOLD_RULES = (
    _HOUSEHOLDS + """
SELECT {upload}, c.row_number, 'individual_role', 'household:more_than_one_head', c.individual_role,
       format('household %s would have %s heads (rows %s%s); a household has one HEAD', h.group_code, h.heads,
              h.head_rows, CASE WHEN h.registry_heads > 0 THEN ' and one already in the registry' ELSE '' END),
       'critical'
FROM intake.{checked} c JOIN households h USING (group_code)
WHERE c.role = 'HEAD' AND h.heads > 1
""",
    _HOUSEHOLDS + """
SELECT {upload}, c.row_number, 'individual_role', 'household:no_head', c.individual_role,
       format('household %s has no HEAD (in this file or in the registry)', h.group_code), 'critical'
FROM intake.{checked} c JOIN households h USING (group_code)
WHERE h.heads = 0
""",
    _HOUSEHOLDS + """
SELECT {upload}, c.row_number, 'recipient_info', 'household:more_than_one_primary_recipient', c.recipient_info,
       format('household %s would have %s primary recipients (rows %s%s); a household has one', h.group_code,
              h.primaries, h.primary_rows,
              CASE WHEN h.registry_primaries > 0 THEN ' and one already in the registry' ELSE '' END),
       'critical'
FROM intake.{checked} c JOIN households h USING (group_code)
WHERE c.recipient_type = 'PRIMARY' AND h.primaries > 1
""",
    _HOUSEHOLDS + """
SELECT {upload}, c.row_number, 'recipient_info', 'household:no_primary_recipient', c.recipient_info,
       format('household %s has no primary recipient (recipient_info 1)', h.group_code), 'critical'
FROM intake.{checked} c JOIN households h USING (group_code)
WHERE h.primaries = 0
""",
    """
SELECT {upload}, row_number, 'individual_role', 'household:role_required', individual_role,
       'a household member needs an individual_role', 'critical'
FROM intake.{checked} WHERE group_code IS NOT NULL AND role IS NULL
""",
    """
SELECT {upload}, row_number, 'group_code', 'household:group_code_required', group_code,
       'an individual_role or recipient_info needs a group_code (the household)', 'critical'
FROM intake.{checked} WHERE group_code IS NULL AND (role IS NOT NULL OR recipient_type IS NOT NULL)
""",
)

# With skip_invalid_rows a household is imported whole or not at all.
HOUSEHOLD_INCOMPLETE = """
WITH invalid AS (
    SELECT DISTINCT c.group_code, c.row_number
    FROM intake.{checked} c
    JOIN intake.row_errors e ON e.upload_id = {upload} AND e.row_number = c.row_number AND e.severity = 'critical'
    WHERE c.group_code IS NOT NULL
), households AS (
    SELECT group_code, string_agg(row_number::text, ', ' ORDER BY row_number) AS rows FROM invalid GROUP BY group_code
)
SELECT {upload}, c.row_number, 'group_code', 'household:incomplete', c.group_code,
       format('household %s is imported whole or not at all, and row(s) %s of it are invalid', h.group_code, h.rows),
       'critical'
FROM intake.{checked} c JOIN households h USING (group_code)
WHERE c.row_number NOT IN (SELECT row_number FROM invalid)
"""
