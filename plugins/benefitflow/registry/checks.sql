-- Registry checks GX cannot express (registry/checks.py runs them; workflows/row_checks.py reads this file).
-- Exact duplicates and broken household rules are critical (the row is blocked); likely duplicates are
-- warnings (the checker sees them and decides).

-- name: unknown_ids
-- An id naming nobody, or a record merged into another (a confirmed duplicate: update the one it was merged into).
SELECT {upload}, c.row_number, 'id', 'id:unknown_individual', c.id,
       CASE WHEN latest.individual_id IS NULL THEN 'no individual with this id in the registry'
            ELSE format('this record was merged into individual %s (a duplicate): update that one', latest.merged_into)
       END,
       'critical'
FROM intake.{checked} c
LEFT JOIN LATERAL (
    SELECT v.individual_id, v.merged_into FROM ledger.individual_versions v
    WHERE v.individual_id = c.individual_id ORDER BY v.version DESC LIMIT 1
) AS latest ON true
WHERE c.individual_id IS NOT NULL AND (latest.individual_id IS NULL OR latest.merged_into IS NOT NULL)

-- name: unknown_person
-- A row naming a registered person by individual_id (its uuid in `person_id`): beneficiaries and grievances. A record
-- merged into another (a confirmed duplicate) is not in the registry either: the message names the survivor.
SELECT {upload}, c.row_number, 'individual_id', 'individual_id:unknown', c.individual_id,
       coalesce(
           (SELECT format('this record was merged into individual %s (a duplicate): name that one', m.merged_into)
            FROM ledger.individual_versions m
            WHERE m.individual_id = c.person_id AND m.merged_into IS NOT NULL
            ORDER BY m.version DESC LIMIT 1),
           'no individual with this id in the registry (register the person first)'), 'critical'
FROM intake.{checked} c
WHERE c.person_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM registry.individuals i WHERE i.individual_id = c.person_id)

-- name: national_id_taken
-- A national id another person holds: someone in the registry, or a record merged into another (a confirmed
-- duplicate: the id is its survivor's, and only the survivor may take it). Merged records are few (a partial index).
SELECT DISTINCT ON (c.row_number)
       {upload}, c.row_number, 'national_id', 'national_id:already_in_registry', c.national_id,
       CASE WHEN holder.merged_into IS NULL
            THEN format('this national id already belongs to individual %s in the registry', holder.individual_id)
            ELSE format('this national id belongs to individual %s, merged into individual %s (a duplicate): only '
                        'that one may take it', holder.individual_id, holder.merged_into)
       END,
       'critical'
FROM intake.{checked} c
JOIN (
    SELECT r.individual_id, r.national_id, NULL::uuid AS merged_into
    FROM registry.individuals r
    UNION ALL
    SELECT m.individual_id, m.national_id, m.merged_into
    FROM ledger.individual_versions m
    WHERE m.merged_into IS NOT NULL
      AND m.version = (SELECT max(l.version) FROM ledger.individual_versions l WHERE l.individual_id = m.individual_id)
) AS holder ON holder.national_id = c.national_id
WHERE (c.individual_id IS NULL OR holder.individual_id <> c.individual_id)
  AND (holder.merged_into IS NULL OR c.individual_id IS NULL OR holder.merged_into <> c.individual_id)
ORDER BY c.row_number

-- name: upload_duplicate_keys
-- The block keys of the upload's rows, a column per block as the registry's people have theirs
-- (registry.duplicate_keys; {keys} names the columns, from the same function). Temporary, dropped at commit.
CREATE TEMPORARY TABLE upload_duplicate_keys ON COMMIT DROP AS
SELECT row_number, {keys}
FROM (SELECT c.row_number, matching.block_keys(c.first_name, c.last_name, c.dob__date, c.phone) AS keys
      FROM intake.{checked} c OFFSET 0) AS rows

-- name: upload_person
-- A checked row as the duplicate comparison reads a person (matching.person, migration 026).
row(c.first_name, c.last_name, c.dob__date, c.sex, c.location_code, c.region, c.group_code, c.phone,
    c.national_id)::matching.person

-- name: likely_duplicates_in_registry
-- Rows that look like a person already in the registry, compared as the registry-wide duplicate search compares
-- (the rules and migration 026's matching functions): with the people sharing a block key with the row (a key
-- more than max_block_size people share compares nobody), kept when the rules keep the pair. The same national
-- id is not a likely duplicate but a critical error (national_id_taken).
WITH shared AS (
    {shared}
), pairs AS (
    SELECT DISTINCT row_number, individual_id FROM shared
), scored AS (
    SELECT c.row_number, c.first_name, c.last_name, r.individual_id, likeness.score
    FROM pairs p
    JOIN intake.{checked} c USING (row_number)
    JOIN registry.individuals r ON r.individual_id = p.individual_id
    CROSS JOIN LATERAL matching.likeness({@upload_person},
        row(r.first_name, r.last_name, r.dob, r.sex, r.location_code, r.region, r.household_code,
            r.attributes ->> 'phone', r.national_id)::matching.person, {rules}) AS likeness
    WHERE matching.is_candidate(likeness, {rules})
      AND (c.individual_id IS NULL OR r.individual_id <> c.individual_id)
      AND (c.national_id IS NULL OR r.national_id IS NULL OR c.national_id <> r.national_id)
)
SELECT DISTINCT ON (row_number) {upload}, row_number, 'first_name', 'likely_duplicate', first_name || ' ' || last_name,
       format('looks like individual %s, already in the registry (duplicate score %s)', individual_id, score),
       'warning'
FROM scored
ORDER BY row_number, score DESC, individual_id

-- name: shared_with_registry
-- One block's part of `shared` (checks.py joins one per block the rules use): each row with the registry's
-- people sharing its key in that block. A key more people share than the rules allow compares nobody, and is left
-- out before the join (its pairs would grow with the square of its size).
SELECT u.row_number, r.individual_id
FROM upload_duplicate_keys u JOIN registry.duplicate_keys r ON r.{block} = u.{block}
WHERE u.{block} IN (SELECT sized.{block} FROM registry.duplicate_keys sized
                    WHERE sized.{block} IN (SELECT {block} FROM upload_duplicate_keys)
                    GROUP BY sized.{block} HAVING count(*) <= ({rules} ->> 'max_block_size')::int)

-- name: shared_within_file
SELECT a.row_number AS earlier, b.row_number AS later
FROM upload_duplicate_keys a JOIN upload_duplicate_keys b ON b.{block} = a.{block} AND a.row_number < b.row_number
WHERE a.{block} IN (SELECT {block} FROM upload_duplicate_keys
                    GROUP BY {block} HAVING count(*) <= ({rules} ->> 'max_block_size')::int)

-- name: likely_duplicates_in_file
-- Two rows of the file that look like one person, compared the same way.
WITH shared AS (
    {shared}
), pairs AS (
    SELECT DISTINCT earlier, later FROM shared
), scored AS (
    SELECT c.row_number, c.first_name, c.last_name, a.row_number AS earlier, a.first_name AS earlier_first_name,
           a.last_name AS earlier_last_name, a.dob__date AS earlier_dob, a.location_code AS earlier_location,
           likeness.score
    FROM pairs p
    JOIN intake.{checked} a ON a.row_number = p.earlier
    JOIN intake.{checked} c ON c.row_number = p.later
    CROSS JOIN LATERAL matching.likeness({@upload_person},
        row(a.first_name, a.last_name, a.dob__date, a.sex, a.location_code, a.region, a.group_code, a.phone,
            a.national_id)::matching.person, {rules}) AS likeness
    WHERE matching.is_candidate(likeness, {rules})
      AND (a.national_id IS NULL OR c.national_id IS NULL OR a.national_id <> c.national_id)
)
SELECT DISTINCT ON (row_number) {upload}, row_number, 'first_name', 'likely_duplicate', first_name || ' ' || last_name,
       format('looks like row %s of this file (%s %s, born %s, location %s; duplicate score %s)', earlier,
              earlier_first_name, earlier_last_name, earlier_dob, coalesce(earlier_location, 'none'), score),
       'warning'
FROM scored
ORDER BY row_number, score DESC, earlier

-- name: upload_members
-- Each row's household, role and recipient type once the upload is applied (registry/checks.py fills in
-- whether the file's value or the registry's counts), with the household the person leaves, if any.
CREATE TEMPORARY TABLE upload_members ON COMMIT DROP AS
SELECT c.row_number, c.individual_id, {group_code} AS group_code, {role} AS role, {role_value} AS role_value,
       {recipient_type} AS recipient_type, {recipient_value} AS recipient_value,
       r.household_code AS previous_group_code
FROM intake.{checked} c
LEFT JOIN registry.individuals r ON {registry_match}

-- name: household_tally
-- Heads and primary recipients per household over a `members` CTE (group_code, role, recipient_type,
-- row_number: the upload's row, NULL for a member the upload leaves alone). One definition of the
-- household rule for validation (the file against the registry) and for commit (the ledger, where a
-- concurrent commit's members count too: households_broken_at_commit).
SELECT group_code,
       count(*) FILTER (WHERE role = 'HEAD') AS heads,
       count(*) FILTER (WHERE recipient_type = 'PRIMARY') AS primaries,
       count(*) FILTER (WHERE role = 'HEAD' AND row_number IS NULL) AS registry_heads,
       count(*) FILTER (WHERE recipient_type = 'PRIMARY' AND row_number IS NULL) AS registry_primaries,
       string_agg(row_number::text, ', ' ORDER BY row_number) FILTER (WHERE role = 'HEAD') AS head_rows,
       string_agg(row_number::text, ', ' ORDER BY row_number) FILTER (WHERE recipient_type = 'PRIMARY')
           AS primary_rows
FROM members GROUP BY group_code

-- name: upload_households
-- Every household the upload touches, counted with the registry members the file leaves alone.
CREATE TEMPORARY TABLE upload_households ON COMMIT DROP AS
WITH touched AS (
    SELECT group_code FROM upload_members WHERE group_code IS NOT NULL
    UNION SELECT previous_group_code FROM upload_members WHERE previous_group_code IS NOT NULL
), members AS (
    SELECT group_code, role, recipient_type, row_number FROM upload_members WHERE group_code IS NOT NULL
    UNION ALL
    SELECT r.household_code, r.role, r.recipient_type, NULL FROM registry.individuals r
    WHERE r.household_code IN (SELECT group_code FROM touched)
      AND NOT EXISTS (SELECT 1 FROM upload_members m WHERE m.individual_id = r.individual_id)
)
{@household_tally}

-- name: related
-- Each row with the households it touches: the one it is in after the upload, and the one it leaves.
CROSS JOIN LATERAL (VALUES (m.group_code), (nullif(m.previous_group_code, m.group_code))) AS related (group_code)

-- name: rows_of_household
-- Rows that join a household or leave one: a household left without its HEAD is reported on the row that leaves.
FROM (SELECT m.row_number, m.role_value, m.recipient_value, h.*
      FROM upload_members m
      {@related}
      JOIN upload_households h ON h.group_code = related.group_code) t

-- name: more_than_one_head
SELECT {upload}, m.row_number, 'individual_role', 'household:more_than_one_head', m.role_value,
       format('household %s would have %s heads (rows %s%s); a household has one HEAD', h.group_code, h.heads,
              h.head_rows, CASE WHEN h.registry_heads > 0 THEN ' and one already in the registry' ELSE '' END),
       'critical'
FROM upload_members m JOIN upload_households h USING (group_code)
WHERE m.role = 'HEAD' AND h.heads > 1

-- name: no_head
SELECT {upload}, t.row_number, 'individual_role', 'household:no_head', t.role_value,
       format('household %s would have no HEAD (in this file or in the registry)', t.group_code), 'critical'
{@rows_of_household}
WHERE t.heads = 0

-- name: more_than_one_primary_recipient
SELECT {upload}, m.row_number, 'recipient_info', 'household:more_than_one_primary_recipient', m.recipient_value,
       format('household %s would have %s primary recipients (rows %s%s); a household has one', h.group_code,
              h.primaries, h.primary_rows,
              CASE WHEN h.registry_primaries > 0 THEN ' and one already in the registry' ELSE '' END),
       'critical'
FROM upload_members m JOIN upload_households h USING (group_code)
WHERE m.recipient_type = 'PRIMARY' AND h.primaries > 1

-- name: no_primary_recipient
SELECT {upload}, t.row_number, 'recipient_info', 'household:no_primary_recipient', t.recipient_value,
       format('household %s would have no primary recipient (recipient_info 1)', t.group_code), 'critical'
{@rows_of_household}
WHERE t.primaries = 0

-- name: role_required
SELECT {upload}, row_number, 'individual_role', 'household:role_required', role_value,
       'a household member needs an individual_role', 'critical'
FROM upload_members WHERE group_code IS NOT NULL AND role IS NULL

-- name: group_code_required
SELECT {upload}, row_number, 'group_code', 'household:group_code_required', NULL,
       'an individual_role or recipient_info needs a group_code (the household); to leave a household, clear '
       'individual_role and recipient_info too', 'critical'
FROM upload_members WHERE group_code IS NULL AND (role IS NOT NULL OR recipient_type IS NOT NULL)

-- name: household_incomplete
-- With skip_invalid_rows a household is imported whole or not at all.
WITH invalid AS (
    SELECT DISTINCT m.row_number, related.group_code
    FROM upload_members m
    {@related}
    JOIN intake.row_errors e ON e.upload_id = {upload} AND e.row_number = m.row_number AND e.severity = 'critical'
    WHERE related.group_code IS NOT NULL
), households AS (
    SELECT group_code, string_agg(row_number::text, ', ' ORDER BY row_number) AS rows FROM invalid GROUP BY group_code
)
SELECT DISTINCT ON (m.row_number) {upload}, m.row_number, 'group_code', 'household:incomplete', m.group_code,
       format('household %s is imported whole or not at all, and row(s) %s of it are invalid', h.group_code, h.rows),
       'critical'
FROM upload_members m
{@related}
JOIN households h ON h.group_code = related.group_code
WHERE NOT EXISTS (SELECT 1 FROM invalid i WHERE i.row_number = m.row_number)
ORDER BY m.row_number, h.group_code

-- name: households_broken_at_commit
-- At commit, once the commit's versions are appended (under the registry lock): the households whose
-- members, roles or recipients the commit changes, tallied over the latest version of every individual
-- in the ledger, so what another upload committed after this one was validated counts (registry.individuals
-- may not even be published yet). Rows of this commit carry their row number; the others count as the
-- registry's. Parameter: %(commit_id)s. The same rule as validation: one HEAD, one PRIMARY recipient.
WITH committed AS (
    SELECT v.household_code, previous.household_code AS previous_household_code
    FROM ledger.individual_versions v
    LEFT JOIN ledger.individual_versions previous
      ON previous.individual_id = v.individual_id AND previous.version = v.version - 1
    WHERE v.commit_id = %(commit_id)s
      AND (previous.individual_id IS NULL
           OR (v.household_code, v.role, v.recipient_type)
              IS DISTINCT FROM (previous.household_code, previous.role, previous.recipient_type))
), touched AS (
    SELECT household_code AS group_code FROM committed WHERE household_code IS NOT NULL
    UNION SELECT previous_household_code FROM committed WHERE previous_household_code IS NOT NULL
), latest AS (
    SELECT DISTINCT ON (v.individual_id) v.commit_id, v.row_number, v.household_code, v.role, v.recipient_type
    FROM ledger.individual_versions v
    WHERE v.individual_id IN (SELECT individual_id FROM ledger.individual_versions
                              WHERE household_code IN (SELECT group_code FROM touched))
    ORDER BY v.individual_id, v.version DESC
), members AS (
    SELECT household_code AS group_code, role, recipient_type,
           CASE WHEN commit_id = %(commit_id)s THEN row_number END AS row_number
    FROM latest WHERE household_code IN (SELECT group_code FROM touched)
)
SELECT group_code, heads, primaries, registry_heads, registry_primaries, head_rows, primary_rows,
       count(*) OVER () AS broken
FROM ({@household_tally}) tally
WHERE heads <> 1 OR primaries <> 1
ORDER BY group_code LIMIT 5
