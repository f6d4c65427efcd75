-- Grievances: tickets linked to a person (and, when reported as one, a beneficiary), and every
-- status change with its comment (the resolution among them). Runs as benefitflow_owner.

CREATE SCHEMA IF NOT EXISTS grievances AUTHORIZATION benefitflow_app;

-- A grievance_status request selects tickets.
ALTER TABLE intake.request_selection ADD COLUMN grievance_id uuid;

CREATE TABLE ledger.grievance_status_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    meaning      text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
COMMENT ON TABLE ledger.grievance_status_transitions IS
    'The only grievance status changes allowed; a ticket is RECEIVED when imported.';
INSERT INTO ledger.grievance_status_transitions VALUES
    ('RECEIVED', 'OPEN', 'accepted'),
    ('OPEN', 'IN_PROGRESS', 'work started'),
    ('IN_PROGRESS', 'RESOLVED', 'resolved'),
    ('RESOLVED', 'CLOSED', 'closed'),
    ('RESOLVED', 'OPEN', 'reopened'),
    ('CLOSED', 'OPEN', 'reopened');
SELECT ledger.make_append_only('ledger.grievance_status_transitions');

CREATE TABLE ledger.grievances (
    grievance_id      uuid        PRIMARY KEY,
    grievance_number  bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    grievance_code    text        GENERATED ALWAYS AS ('GR' || lpad(grievance_number::text, 8, '0')) STORED UNIQUE,
    individual_id     uuid        NOT NULL,
    beneficiary_id    uuid,
    title             text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description       text        CHECK (length(description) <= 4000),
    category          text        NOT NULL,
    channel           text        NOT NULL,
    priority          text        NOT NULL CHECK (priority IN ('LOW', 'NORMAL', 'HIGH', 'URGENT')),
    incident_date     date,
    received_on       date        NOT NULL,
    due_on            date        NOT NULL CHECK (due_on >= received_on),
    commit_id         bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    upload_id         bigint      REFERENCES intake.uploads (upload_id),
    row_number        bigint,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (incident_date IS NULL OR incident_date <= received_on)
);
COMMENT ON TABLE ledger.grievances IS
    'Grievance tickets as received; due_on is fixed at intake from the category''s resolution time.';
CREATE INDEX grievances_by_individual ON ledger.grievances (individual_id);
SELECT ledger.make_append_only('ledger.grievances');

CREATE TABLE ledger.grievance_events (
    grievance_id  uuid        NOT NULL REFERENCES ledger.grievances (grievance_id),
    version       integer     NOT NULL CHECK (version >= 1),
    status        text        NOT NULL CHECK (status IN ('RECEIVED', 'OPEN', 'IN_PROGRESS', 'RESOLVED', 'CLOSED')),
    comment       text        CHECK (length(comment) <= 4000),
    commit_id     bigint      NOT NULL REFERENCES ledger.commits (commit_id),
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (grievance_id, version),
    CHECK (status <> 'RESOLVED' OR nullif(btrim(comment), '') IS NOT NULL)
);
COMMENT ON TABLE ledger.grievance_events IS
    'Every status of a ticket in order (version 1 is RECEIVED), with its comment; a RESOLVED one carries the resolution.';
SELECT ledger.make_append_only('ledger.grievance_events');

CREATE FUNCTION ledger.refuse_forbidden_grievance_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n
        LEFT JOIN ledger.grievance_events p ON p.grievance_id = n.grievance_id AND p.version = n.version - 1
        WHERE (n.version = 1 AND n.status <> 'RECEIVED')
           OR (n.version > 1 AND (p.grievance_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM ledger.grievance_status_transitions t
                WHERE t.from_status = p.status AND t.to_status = n.status)))
    ) THEN
        RAISE EXCEPTION 'grievance status change not in ledger.grievance_status_transitions'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER allowed_grievance_transitions AFTER INSERT ON ledger.grievance_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_forbidden_grievance_transition();
