-- The social registry: individuals (versioned), households, the schema in force.
-- Runs as benefitflow_owner (owner of the database, so it may create the trusted pg_trgm).

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

-- A commit's size lives with its facts and in the audit trail; a count fixed before the
-- facts were appended was always 0. CASCADE drops only dbt's staging view over it, which
-- the dbt build after the migrations recreates.
ALTER TABLE ledger.commits DROP COLUMN row_count CASCADE;

ALTER TABLE intake.uploads ADD COLUMN mode text;
COMMENT ON COLUMN intake.uploads.mode IS 'create or update, for uploads that can do both';

-- A real ISO date or NULL, without raising (2023-02-30 is NULL): set-based validation needs it.
CREATE FUNCTION intake.parse_iso_date(value text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' THEN
        CASE WHEN substr(value, 9, 2)::int <= extract(day FROM
                 make_date(substr(value, 1, 4)::int, substr(value, 6, 2)::int, 1) + interval '1 month - 1 day')
             THEN value::date END
    END
$$;
GRANT EXECUTE ON FUNCTION intake.parse_iso_date(text) TO benefitflow_app;

-- The registry schema documents in force over time (the JSON Schema and its flattened variables).
CREATE TABLE ledger.registry_schemas (
    schema_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256       text        NOT NULL UNIQUE,
    document     jsonb       NOT NULL,
    variables    jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
SELECT ledger.make_append_only('ledger.registry_schemas');

CREATE TABLE ledger.households (
    household_id    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    household_code  text        NOT NULL UNIQUE,
    commit_id       bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
SELECT ledger.make_append_only('ledger.households');

-- Every version of every individual: a full snapshot per approved change.
CREATE TABLE ledger.individual_versions (
    individual_id   uuid        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    commit_id       bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    upload_id       bigint      REFERENCES intake.uploads (upload_id),
    row_number      bigint,
    first_name      text        NOT NULL,
    last_name       text        NOT NULL,
    dob             date        NOT NULL,
    sex             text,
    national_id     text,
    location_code   text,
    location_name   text,
    region          text,
    household_code  text        REFERENCES ledger.households (household_code),
    role            text,
    recipient_type  text        CHECK (recipient_type IN ('PRIMARY', 'SECONDARY')),
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (individual_id, version)
);
CREATE INDEX individual_versions_by_national_id ON ledger.individual_versions (national_id)
    WHERE national_id IS NOT NULL;
CREATE INDEX individual_versions_by_commit ON ledger.individual_versions (commit_id);
SELECT ledger.make_append_only('ledger.individual_versions');
