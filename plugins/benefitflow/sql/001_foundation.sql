-- Foundation: schemas, uploads, row errors, the append-only ledger, decisions, audit trail.
-- Runs as benefitflow_owner. benefitflow_app (tasks, dbt) gets only what it needs.

CREATE SCHEMA IF NOT EXISTS intake;
CREATE SCHEMA IF NOT EXISTS ledger;
-- dbt-built schemas are owned by the app user so dbt can replace its own relations.
CREATE SCHEMA IF NOT EXISTS staging AUTHORIZATION benefitflow_app;
CREATE SCHEMA IF NOT EXISTS registry AUTHORIZATION benefitflow_app;
CREATE SCHEMA IF NOT EXISTS payments AUTHORIZATION benefitflow_app;
CREATE SCHEMA IF NOT EXISTS proposals AUTHORIZATION benefitflow_app;
CREATE SCHEMA IF NOT EXISTS marts AUTHORIZATION benefitflow_app;

GRANT USAGE ON SCHEMA intake, ledger TO benefitflow_app;
-- Staged upload tables are created per upload by the app user.
GRANT CREATE ON SCHEMA intake TO benefitflow_app;

-- Superset's read-only user sees marts and nothing else.
GRANT USAGE ON SCHEMA marts TO superset_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE benefitflow_app IN SCHEMA marts GRANT SELECT ON TABLES TO superset_reader;

------------------------------------------------------------------------------------------
-- intake: what users handed in
------------------------------------------------------------------------------------------
CREATE TABLE intake.uploads (
    upload_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text        NOT NULL,
    plan_code        text        NOT NULL DEFAULT '',
    file_name        text        NOT NULL,
    stored_path      text        NOT NULL,
    sha256           text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes       bigint      NOT NULL CHECK (size_bytes >= 0),
    uploaded_by      text        NOT NULL,
    uploaded_at      timestamptz NOT NULL DEFAULT now(),
    dag_id           text,
    run_id           text,
    status           text        NOT NULL DEFAULT 'RECEIVED' CHECK (status IN (
                         'RECEIVED', 'INVALID', 'WAITING_FOR_APPROVAL', 'APPLIED',
                         'PARTIALLY_APPLIED', 'REJECTED', 'FAILED')),
    staged_table     text,
    row_count        bigint,
    valid_row_count  bigint,
    invalid_row_count bigint,
    error_report_path text,
    message          text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uploads_same_file_once UNIQUE (kind, plan_code, sha256)
);
COMMENT ON TABLE intake.uploads IS
    'Every file handed in, with its checksum and where it stands. The same file (checksum, kind, plan) is accepted once.';

CREATE TABLE intake.row_errors (
    upload_id    bigint  NOT NULL REFERENCES intake.uploads (upload_id),
    row_number   bigint,            -- data row, 1 = first row after the header; NULL = whole file
    column_name  text,
    rule         text    NOT NULL,
    value        text,
    message      text    NOT NULL,
    severity     text    NOT NULL DEFAULT 'critical' CHECK (severity IN ('critical', 'warning', 'info'))
);
CREATE INDEX row_errors_by_upload ON intake.row_errors (upload_id, row_number);

GRANT SELECT, INSERT, UPDATE ON intake.uploads TO benefitflow_app;
GRANT SELECT, INSERT, DELETE ON intake.row_errors TO benefitflow_app;

------------------------------------------------------------------------------------------
-- ledger: approved facts, append-only (enforced here, for every user, owner included)
------------------------------------------------------------------------------------------
CREATE FUNCTION ledger.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger table %.% is append-only: % is not allowed',
        TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Call for every ledger table: refuses UPDATE, DELETE and TRUNCATE.
CREATE FUNCTION ledger.make_append_only(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Statement-level: refused even when no row matches.
    EXECUTE format('CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_change()', target);
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM PUBLIC, benefitflow_app', target);
    EXECUTE format('GRANT SELECT, INSERT ON %s TO benefitflow_app', target);
END;
$$;

-- One row per answered approval request (or a refusal by the guard, or a timeout).
CREATE TABLE ledger.decisions (
    decision_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation       text        NOT NULL,
    dag_id          text        NOT NULL,
    run_id          text        NOT NULL,
    upload_id       bigint      REFERENCES intake.uploads (upload_id),
    maker           text        NOT NULL,
    checker         text,                     -- NULL for a timeout
    checker_group   text        NOT NULL,
    policy          text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('APPROVED', 'REJECTED', 'REFUSED', 'TIMED_OUT')),
    reason          text,
    summary         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    requested_at    timestamptz,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT decision_checker_is_not_maker CHECK (outcome <> 'APPROVED' OR checker IS DISTINCT FROM maker),
    CONSTRAINT decision_approved_has_checker CHECK (outcome <> 'APPROVED' OR checker IS NOT NULL)
);
CREATE INDEX decisions_by_run ON ledger.decisions (dag_id, run_id);
SELECT ledger.make_append_only('ledger.decisions');

-- What a committed operation appended, once per run.
CREATE TABLE ledger.commits (
    commit_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation       text        NOT NULL,
    dag_id          text        NOT NULL,
    run_id          text        NOT NULL,
    decision_id     bigint      NOT NULL REFERENCES ledger.decisions (decision_id),
    upload_id       bigint      REFERENCES intake.uploads (upload_id),
    row_count       bigint      NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT commit_once_per_run UNIQUE (dag_id, run_id)
);
SELECT ledger.make_append_only('ledger.commits');

------------------------------------------------------------------------------------------
-- Audit trail with a hash chain: each row's hash covers its content and the previous hash.
------------------------------------------------------------------------------------------
CREATE TABLE ledger.audit_events (
    event_id     bigint      PRIMARY KEY,
    occurred_at  timestamptz NOT NULL,
    actor        text        NOT NULL,
    action       text        NOT NULL,
    object_type  text        NOT NULL,
    object_id    text        NOT NULL,
    outcome      text        NOT NULL,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    prev_hash    text        NOT NULL,
    row_hash     text        NOT NULL
);
CREATE SEQUENCE ledger.audit_event_ids OWNED BY ledger.audit_events.event_id;

-- The one definition of what a row's hash covers; verification uses it too.
CREATE FUNCTION ledger.audit_row_hash(
    prev_hash text, event_id bigint, occurred_at timestamptz, actor text, action text,
    object_type text, object_id text, outcome text, details jsonb
) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(
        prev_hash || E'\x1f' || event_id::text
        || E'\x1f' || (extract(epoch FROM occurred_at) * 1000000)::bigint::text
        || E'\x1f' || actor || E'\x1f' || action || E'\x1f' || object_type
        || E'\x1f' || object_id || E'\x1f' || outcome || E'\x1f' || details::text,
        'UTF8')), 'hex')
$$;

CREATE FUNCTION ledger.chain_audit_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ledger, pg_temp AS $$
DECLARE
    previous text;
BEGIN
    -- Serialise writers so ids, times and links follow one order.
    PERFORM pg_advisory_xact_lock(hashtext('benefitflow.audit_chain'));
    SELECT row_hash INTO previous FROM ledger.audit_events ORDER BY event_id DESC LIMIT 1;
    NEW.event_id    := nextval('ledger.audit_event_ids');
    NEW.occurred_at := date_trunc('microseconds', clock_timestamp());
    NEW.prev_hash   := coalesce(previous, repeat('0', 64));
    NEW.row_hash    := ledger.audit_row_hash(NEW.prev_hash, NEW.event_id, NEW.occurred_at, NEW.actor,
                          NEW.action, NEW.object_type, NEW.object_id, NEW.outcome, NEW.details);
    RETURN NEW;
END;
$$;
CREATE TRIGGER chain BEFORE INSERT ON ledger.audit_events
    FOR EACH ROW EXECUTE FUNCTION ledger.chain_audit_event();
SELECT ledger.make_append_only('ledger.audit_events');

-- First row whose hash or link does not verify (no rows: the chain is intact).
CREATE FUNCTION ledger.audit_chain_breaks()
RETURNS TABLE (event_id bigint, problem text)
LANGUAGE sql STABLE AS $$
    WITH chained AS (
        SELECT e.*,
               lag(e.row_hash, 1, repeat('0', 64)) OVER (ORDER BY e.event_id) AS expected_prev,
               ledger.audit_row_hash(e.prev_hash, e.event_id, e.occurred_at, e.actor, e.action,
                                     e.object_type, e.object_id, e.outcome, e.details) AS recomputed
        FROM ledger.audit_events e
    )
    SELECT event_id,
           CASE WHEN prev_hash <> expected_prev
                THEN 'link to the previous row is broken (a row before it was changed or removed)'
                ELSE 'content does not match its hash (the row was changed)' END
    FROM chained
    WHERE prev_hash <> expected_prev OR row_hash <> recomputed
    ORDER BY event_id
$$;
GRANT EXECUTE ON FUNCTION ledger.audit_chain_breaks() TO benefitflow_app;

------------------------------------------------------------------------------------------
-- The self-test workflow's facts: proves the six steps end to end.
------------------------------------------------------------------------------------------
CREATE TABLE ledger.selftest_records (
    commit_id    bigint NOT NULL REFERENCES ledger.commits (commit_id),
    row_number   bigint NOT NULL,
    code         text   NOT NULL,
    label        text   NOT NULL,
    amount       numeric(14, 2) NOT NULL,
    PRIMARY KEY (commit_id, row_number)
);
SELECT ledger.make_append_only('ledger.selftest_records');
