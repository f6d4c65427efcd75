-- Checks of a grievances file GX cannot express (grievances_import.py runs them: workflows/row_checks.py).

-- name: no_reporter
SELECT {upload}, c.row_number, 'individual_id', 'reporter:missing', NULL,
       'name the person who reports: individual_id or beneficiary_id', 'critical'
FROM intake.{checked} c
WHERE c.individual_id IS NULL AND c.beneficiary_id IS NULL

-- name: unknown_beneficiary
SELECT {upload}, c.row_number, 'beneficiary_id', 'beneficiary_id:unknown', c.beneficiary_id,
       'no beneficiary with this id', 'critical'
FROM intake.{checked} c
WHERE c.reporting_beneficiary_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM programmes.beneficiaries b WHERE b.beneficiary_id = c.reporting_beneficiary_id)

-- name: household_without_head
SELECT {upload}, c.row_number, 'beneficiary_id', 'reporter:household_without_head', c.beneficiary_id,
       format('household %s of this beneficiary has no HEAD to link the grievance to: give individual_id',
              b.household_code), 'critical'
FROM intake.{checked} c
JOIN programmes.beneficiaries b ON b.beneficiary_id = c.reporting_beneficiary_id
LEFT JOIN registry.households h ON h.household_code = b.household_code
WHERE c.person_id IS NULL AND b.individual_id IS NULL AND h.head_individual_id IS NULL

-- name: reporters_disagree
SELECT {upload}, c.row_number, 'beneficiary_id', 'reporter:disagree', c.beneficiary_id,
       format('beneficiary %s is not individual %s (nor their household)', c.beneficiary_id, c.individual_id),
       'critical'
FROM intake.{checked} c
JOIN programmes.beneficiaries b ON b.beneficiary_id = c.reporting_beneficiary_id
JOIN registry.individuals i ON i.individual_id = c.person_id
WHERE b.individual_id IS DISTINCT FROM i.individual_id AND b.household_code IS DISTINCT FROM i.household_code

-- name: incident_after_receipt
SELECT {upload}, c.row_number, 'incident_date', 'incident_date:after_received_on', c.incident_date,
       format('the incident (%s) is after the day the grievance was received (%s)', c.incident_date, c.received_date),
       'critical'
FROM intake.{checked} c
WHERE c.incident_date__date > c.received_date
  AND c.incident_date__date <= current_date  -- a future one is reported as such
