-- A proposal table holds every upload's or request's proposal; each step reads, digests, commits and
-- replaces only its own. Without an index on the key, a ten-row update read the million rows of the
-- registry's first import several times (delete+insert, counts, the digest, the commit). The proposal
-- models declare this index (dbt creates it with the table); this adds it to tables made before.
-- Runs as benefitflow_owner (a member of benefitflow_app, which owns the tables dbt made).

DO $$
DECLARE
    proposal record;
BEGIN
    FOR proposal IN
        SELECT * FROM (VALUES
            ('beneficiaries_import_proposal', 'upload_id'),
            ('beneficiary_status_proposal', 'request_id'),
            ('enrolment_proposal', 'request_id'),
            ('grievance_status_proposal', 'request_id'),
            ('grievances_import_proposal', 'upload_id'),
            ('held_bills_release_proposal', 'request_id'),
            ('individuals_import_proposal', 'upload_id'),
            ('payment_cycle_proposal', 'request_id'),
            ('payroll_proposal', 'request_id'),
            ('payroll_reconciliation_proposal', 'upload_id'),
            ('plan_define_proposal', 'request_id'),
            ('selftest_proposal', 'upload_id')
        ) AS proposals (model, key)
    LOOP
        IF to_regclass(format('proposals.%I', proposal.model)) IS NOT NULL AND NOT EXISTS (
            SELECT FROM pg_index AS i
            JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = to_regclass(format('proposals.%I', proposal.model)) AND a.attname = proposal.key
        ) THEN
            EXECUTE format('CREATE INDEX ON proposals.%I (%I)', proposal.model, proposal.key);
        END IF;
    END LOOP;
END
$$;
