-- Checks of a beneficiaries file GX cannot express (beneficiaries_import.py runs them: workflows/row_checks.py).

-- name: person_named_twice
SELECT {upload}, c.row_number, 'individual_id', 'person:named_twice', c.individual_id,
       'a row names a registered person (individual_id) or describes a new one (first_name, last_name, dob, ...), '
       'not both', 'critical'
FROM intake.{checked} c
WHERE c.individual_id IS NOT NULL AND {described}

-- name: new_person_incomplete
SELECT {upload}, c.row_number, 'individual_id', 'person:new_person_incomplete', NULL,
       'a new person needs first_name, last_name and dob (or name a registered person or household)',
       'critical'
FROM intake.{checked} c
WHERE {new_person} AND (c.first_name IS NULL OR c.last_name IS NULL OR c.dob IS NULL)

-- name: unknown_household
SELECT {upload}, c.row_number, 'household_code', 'household_code:unknown', c.household_code,
       'no household with this code in the registry: register it first, or describe its members '
       '(first_name, last_name, dob, individual_role, recipient_info)', 'critical'
FROM intake.{checked} c
WHERE c.household_code IS NOT NULL AND NOT c.household_is_registered AND NOT {described}

-- name: registered_household_described
SELECT {upload}, c.row_number, 'household_code', 'household:already_registered', c.household_code,
       'this household is registered: its row gives only the plan variables (add or change members with '
       'individuals_import)', 'critical'
FROM intake.{checked} c
WHERE c.household_is_registered AND {described}

-- name: registered_household_twice
SELECT {upload}, c.row_number, 'household_code', 'household_code:named_twice', c.household_code,
       format('household %s is named on more than one row (rows %s)', c.household_code, t.rows), 'critical'
FROM intake.{checked} c
JOIN (SELECT household_code, string_agg(row_number::text, ', ' ORDER BY row_number) AS rows
      FROM intake.{checked} WHERE household_is_registered GROUP BY household_code HAVING count(*) > 1) t
  USING (household_code)

-- name: variables_on_a_members_row
SELECT {upload}, c.row_number, NULL, 'household:variables_on_a_members_row', NULL,
       format('plan variables and status of new household %s go on its HEAD''s row only', c.household_code),
       'critical'
FROM intake.{checked} c
WHERE NOT c.beneficiary_row AND (c.plan_attributes <> '{{}}'::jsonb OR c.status IS NOT NULL)

-- name: variable_missing
SELECT {upload}, c.row_number, {name}, {name} || ':required', NULL, 'a value is required', 'critical'
FROM intake.{checked} c
WHERE c.beneficiary_row AND c.{variable} IS NULL

-- name: already_enrolled
SELECT {upload}, c.row_number, {column}, 'beneficiary:already_enrolled', {member},
       format('already a beneficiary of plan %s (id %s, %s)', b.plan_code, b.beneficiary_id, b.status), 'critical'
FROM intake.{checked} c
JOIN programmes.beneficiaries b ON b.plan_code = {plan} AND {match}

-- name: unknown_beneficiary
SELECT {upload}, c.row_number, 'id', 'id:unknown_beneficiary', c.id,
       format('no beneficiary of plan %s with this id', {plan}), 'critical'
FROM intake.{checked} c
WHERE c.beneficiary_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM programmes.beneficiaries b WHERE b.beneficiary_id = c.beneficiary_id AND b.plan_code = {plan})

-- name: over_capacity
-- Beneficiaries beyond the places left (in file order), among the rows otherwise valid; with the
-- other rows of a new household whose HEAD is refused.
WITH refused AS (
    SELECT ranked.row_number, ranked.household_code
    FROM (
        SELECT c.row_number, c.household_code, row_number() OVER (ORDER BY c.row_number) AS place
        FROM intake.{checked} c
        WHERE c.beneficiary_row AND NOT EXISTS (
            SELECT 1 FROM intake.row_errors e
            WHERE e.upload_id = {upload} AND e.row_number = c.row_number AND e.severity = 'critical')
    ) ranked
    WHERE ranked.place > {capacity} - (SELECT count(*) FROM programmes.beneficiaries WHERE plan_code = {plan})
)
SELECT {upload}, c.row_number, NULL, 'plan:max_beneficiaries', NULL,
       format('plan %s would exceed its max_beneficiaries (%s)', {plan}, {capacity}), 'critical'
FROM intake.{checked} c
WHERE c.row_number IN (SELECT row_number FROM refused)
   OR (NOT c.household_is_registered AND c.household_code IN (SELECT household_code FROM refused))
