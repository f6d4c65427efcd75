-- Benefit plans (versioned), beneficiaries (versioned, with their status), and requests:
-- operations that start from a trigger form's parameters rather than from a file.
-- Runs as benefitflow_owner.

CREATE SCHEMA IF NOT EXISTS programmes AUTHORIZATION benefitflow_app;

------------------------------------------------------------------------------------------
-- intake.requests: what a maker asked for (plan document, criteria, ...), as an upload is a file
------------------------------------------------------------------------------------------
CREATE TABLE intake.requests (
    request_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text        NOT NULL,
    plan_code     text        NOT NULL DEFAULT '',
    parameters    jsonb       NOT NULL,   -- the trigger form's parameters, as given
    document      jsonb,                  -- what validation made of them (e.g. the plan document, normalised)
    requested_by  text        NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    dag_id        text,
    run_id        text,
    status        text        NOT NULL DEFAULT 'RECEIVED' CHECK (status IN (
                      'RECEIVED', 'INVALID', 'WAITING_FOR_APPROVAL', 'APPLIED', 'REJECTED', 'FAILED')),
    message       text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE intake.requests IS
    'Every operation asked for from a trigger form (plan definition, enrolment, status change), with where it stands.';
GRANT SELECT, INSERT, UPDATE ON intake.requests TO benefitflow_app;

-- The set a request selects (enrolment candidates, beneficiaries whose status changes), written
-- set-based by the validate step from compiled criteria or an uploaded id list, read by dbt.
CREATE UNLOGGED TABLE intake.request_selection (
    request_id      bigint NOT NULL REFERENCES intake.requests (request_id),
    individual_id   uuid,
    household_code  text,
    beneficiary_id  uuid,
    row_number      bigint
);
CREATE INDEX request_selection_by_request ON intake.request_selection (request_id);
GRANT SELECT, INSERT, DELETE ON intake.request_selection TO benefitflow_app;

ALTER TABLE ledger.decisions ADD COLUMN request_id bigint REFERENCES intake.requests (request_id);
ALTER TABLE ledger.commits ADD COLUMN request_id bigint REFERENCES intake.requests (request_id);

------------------------------------------------------------------------------------------
-- Plans: every approved version of every plan's document
------------------------------------------------------------------------------------------
CREATE TABLE ledger.plan_versions (
    plan_code          text        NOT NULL CHECK (plan_code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$'),
    version            integer     NOT NULL CHECK (version >= 1),
    commit_id          bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    name               text        NOT NULL,
    plan_type          text        NOT NULL CHECK (plan_type IN ('INDIVIDUAL', 'GROUP')),
    valid_from         date        NOT NULL,
    valid_to           date,
    max_beneficiaries  integer     CHECK (max_beneficiaries > 0),
    currency           text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status             text        NOT NULL CHECK (status IN ('ACTIVE', 'CLOSED')),
    document           jsonb       NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_code, version),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
SELECT ledger.make_append_only('ledger.plan_versions');

------------------------------------------------------------------------------------------
-- Beneficiaries: a full snapshot per approved change (enrolment, status change, data update)
------------------------------------------------------------------------------------------
CREATE TABLE ledger.beneficiary_status_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    meaning      text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
COMMENT ON TABLE ledger.beneficiary_status_transitions IS
    'The only status changes allowed; enrolment itself goes to POTENTIAL or ACTIVE.';
INSERT INTO ledger.beneficiary_status_transitions VALUES
    ('POTENTIAL', 'ACTIVE', 'taken up'),
    ('ACTIVE', 'SUSPENDED', 'suspended'),
    ('SUSPENDED', 'ACTIVE', 'reinstated'),
    ('ACTIVE', 'GRADUATED', 'graduated'),
    ('SUSPENDED', 'GRADUATED', 'graduated while suspended'),
    ('POTENTIAL', 'GRADUATED', 'not taken up');
SELECT ledger.make_append_only('ledger.beneficiary_status_transitions');

CREATE TABLE ledger.beneficiary_versions (
    beneficiary_id   uuid        NOT NULL,
    version          integer     NOT NULL CHECK (version >= 1),
    plan_code        text        NOT NULL,
    individual_id    uuid,
    household_code   text        REFERENCES ledger.households (household_code),
    status           text        NOT NULL CHECK (status IN ('POTENTIAL', 'ACTIVE', 'SUSPENDED', 'GRADUATED')),
    attributes       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    reason           text,
    commit_id        bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    upload_id        bigint      REFERENCES intake.uploads (upload_id),
    row_number       bigint,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (beneficiary_id, version),
    CHECK ((individual_id IS NULL) <> (household_code IS NULL))
);
-- A person (or household) is enrolled in a plan once; later versions keep the same identity.
CREATE UNIQUE INDEX beneficiary_enrolled_once_individual ON ledger.beneficiary_versions (plan_code, individual_id)
    WHERE version = 1 AND individual_id IS NOT NULL;
CREATE UNIQUE INDEX beneficiary_enrolled_once_household ON ledger.beneficiary_versions (plan_code, household_code)
    WHERE version = 1 AND household_code IS NOT NULL;
CREATE INDEX beneficiary_versions_by_commit ON ledger.beneficiary_versions (commit_id);
SELECT ledger.make_append_only('ledger.beneficiary_versions');

-- The transition table is enforced by the database too, whatever wrote the row.
CREATE FUNCTION ledger.refuse_forbidden_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n
        JOIN ledger.beneficiary_versions p ON p.beneficiary_id = n.beneficiary_id AND p.version = n.version - 1
        WHERE p.status <> n.status
          AND NOT EXISTS (SELECT 1 FROM ledger.beneficiary_status_transitions t
                          WHERE t.from_status = p.status AND t.to_status = n.status)
    ) OR EXISTS (SELECT 1 FROM new_rows n WHERE n.version = 1 AND n.status NOT IN ('POTENTIAL', 'ACTIVE')) THEN
        RAISE EXCEPTION 'beneficiary status change not in ledger.beneficiary_status_transitions'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER allowed_transitions AFTER INSERT ON ledger.beneficiary_versions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_forbidden_transition();
