-- An approval is for one exact proposal. At propose the platform computes a digest of what would be
-- committed (the operation, the upload or request it is for — file sha256, parameters, the document
-- validation made of them — and the proposal rows in a canonical order); the request shows it, the
-- decision records it, and commit recomputes it from what it is about to append and refuses
-- unless it equals the approved one. Identities are kept by Airflow user id, not only by name.
-- Runs as benefitflow_owner.

------------------------------------------------------------------------------------------
-- The digest, in SQL over the proposal table (no rows loaded into Python).
------------------------------------------------------------------------------------------
-- Each row is hashed on its own (sha256 of its binary form, `record_send`: each column's type and
-- value, cheaper than text and independent of session settings such as the time zone); the row
-- hashes are sorted and hashed together, so the digest depends on the multiset of rows and not on
-- the order they were written in. The settings that change how values print are fixed anyway, for
-- the header below, so the approve step and the commit step, in different processes, agree.
CREATE FUNCTION ledger.proposal_rows_digest(proposal regclass, key_column text, key_value bigint)
RETURNS bytea
LANGUAGE plpgsql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'iso_8601' SET extra_float_digits = 3
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    digest bytea;
BEGIN
    EXECUTE format(
        'SELECT sha256(coalesce(string_agg(row_hash, ''''::bytea ORDER BY row_hash), ''''::bytea))'
        ' FROM (SELECT sha256(record_send(p)) AS row_hash FROM %s AS p WHERE %I = $1) AS hashed',
        proposal, key_column)
    INTO digest USING key_value;
    RETURN digest;
END;
$$;

-- The whole digest: what the operation is for (upload or request, as recorded at intake), the proposal
-- table's columns (names and types: the rows' binary form carries types, not names), then the rows.
CREATE FUNCTION ledger.proposal_digest(operation text, proposal regclass, upload_id bigint, request_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'iso_8601' SET extra_float_digits = 3
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT encode(sha256(
        convert_to(jsonb_build_object(
            'operation', operation,
            'proposal', proposal::text,
            'columns', (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                                          ORDER BY a.attnum)
                        FROM pg_attribute a WHERE a.attrelid = proposal AND a.attnum > 0 AND NOT a.attisdropped),
            'upload', (SELECT jsonb_build_object('id', u.upload_id, 'kind', u.kind, 'plan', u.plan_code,
                                                 'file', u.file_name, 'sha256', u.sha256, 'mode', u.mode)
                       FROM intake.uploads u WHERE u.upload_id = proposal_digest.upload_id),
            'request', (SELECT jsonb_build_object('id', r.request_id, 'kind', r.kind, 'plan', r.plan_code,
                                                  'parameters', r.parameters, 'document', r.document)
                        FROM intake.requests r WHERE r.request_id = proposal_digest.request_id)
        )::text, 'UTF8')
        || ledger.proposal_rows_digest(
               proposal,
               CASE WHEN request_id IS NOT NULL THEN 'request_id' ELSE 'upload_id' END,
               coalesce(request_id, upload_id))
    ), 'hex')
$$;
GRANT EXECUTE ON FUNCTION ledger.proposal_rows_digest(regclass, text, bigint) TO benefitflow_app;
GRANT EXECUTE ON FUNCTION ledger.proposal_digest(text, regclass, bigint, bigint) TO benefitflow_app;

------------------------------------------------------------------------------------------
-- Decisions and commits name the digest; decisions name people by user id too.
------------------------------------------------------------------------------------------
ALTER TABLE ledger.decisions
    ADD COLUMN proposal_digest    text CHECK (proposal_digest ~ '^[0-9a-f]{64}$'),
    ADD COLUMN maker_id           text,
    ADD COLUMN checker_id         text,
    ADD COLUMN other_approver_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN run_clear_number   integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN ledger.decisions.proposal_digest IS
    'The digest of the proposal the checker was shown; an approval commits that proposal and nothing else.';
COMMENT ON COLUMN ledger.decisions.maker_id IS 'Airflow user id of the maker (a renamed user keeps it, a re-created one does not).';
COMMENT ON COLUMN ledger.decisions.checker_id IS 'Airflow user id of the deciding checker.';
COMMENT ON COLUMN ledger.decisions.other_approver_ids IS 'Airflow user ids of other_approvers, in the same order.';
COMMENT ON COLUMN ledger.decisions.run_clear_number IS
    'How many times the run had been cleared when the answer was given: a cleared run asks again.';

-- New approvals only (decisions before this migration had no digest; NOT VALID leaves them as they are).
ALTER TABLE ledger.decisions ADD CONSTRAINT decision_approved_names_its_proposal
    CHECK (outcome <> 'APPROVED' OR proposal_digest IS NOT NULL) NOT VALID;
ALTER TABLE ledger.decisions ADD CONSTRAINT decision_approved_by_other_user_ids
    CHECK (outcome <> 'APPROVED' OR (
        checker_id IS NOT NULL
        AND checker_id IS DISTINCT FROM maker_id
        AND NOT (maker_id = ANY (other_approver_ids))
        AND NOT (checker_id = ANY (other_approver_ids))
        AND cardinality(other_approver_ids) = cardinality(other_approvers)
    )) NOT VALID;

ALTER TABLE ledger.commits ADD COLUMN proposal_digest text CHECK (proposal_digest ~ '^[0-9a-f]{64}$');
COMMENT ON COLUMN ledger.commits.proposal_digest IS
    'The digest recomputed, inside the commit transaction, from what was appended; equal to the decision''s.';

------------------------------------------------------------------------------------------
-- A run that takes in its input again (a cleared or retried intake) supersedes its earlier input,
-- which can then no longer be proposed, approved or committed; the same file is accepted again for
-- that run only. An applied input is never superseded.
------------------------------------------------------------------------------------------
ALTER TABLE intake.uploads DROP CONSTRAINT uploads_status_check;
ALTER TABLE intake.uploads ADD CONSTRAINT uploads_status_check CHECK (status IN (
    'RECEIVED', 'INVALID', 'WAITING_FOR_APPROVAL', 'APPLIED', 'PARTIALLY_APPLIED', 'REJECTED', 'FAILED', 'SUPERSEDED'));
ALTER TABLE intake.uploads DROP CONSTRAINT uploads_same_file_once;
CREATE UNIQUE INDEX uploads_same_file_once ON intake.uploads (kind, plan_code, sha256) WHERE status <> 'SUPERSEDED';
CREATE INDEX uploads_by_run ON intake.uploads (dag_id, run_id);

ALTER TABLE intake.requests DROP CONSTRAINT requests_status_check;
ALTER TABLE intake.requests ADD CONSTRAINT requests_status_check CHECK (status IN (
    'RECEIVED', 'INVALID', 'WAITING_FOR_APPROVAL', 'APPLIED', 'REJECTED', 'FAILED', 'SUPERSEDED'));
CREATE INDEX requests_by_run ON intake.requests (dag_id, run_id);
