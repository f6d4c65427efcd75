-- The beneficiary status check (migration 003) looks up each new version's previous one only for
-- versions after the first: the same rule, stated so the planner can see that an enrolment's versions
-- (all version 1) have no previous version to look up. Asked "does any exist?", it expected to stop
-- early and probed the versions' primary key once per new row: a million probes, none found, for
-- every enrolment of a million people.
-- Runs as benefitflow_owner.
CREATE OR REPLACE FUNCTION ledger.refuse_forbidden_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n
        JOIN ledger.beneficiary_versions p ON p.beneficiary_id = n.beneficiary_id AND p.version = n.version - 1
        WHERE n.version > 1
          AND p.status <> n.status
          AND NOT EXISTS (SELECT 1 FROM ledger.beneficiary_status_transitions t
                          WHERE t.from_status = p.status AND t.to_status = n.status)
    ) OR EXISTS (SELECT 1 FROM new_rows n WHERE n.version = 1 AND n.status NOT IN ('POTENTIAL', 'ACTIVE')) THEN
        RAISE EXCEPTION 'beneficiary status change not in ledger.beneficiary_status_transitions'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
