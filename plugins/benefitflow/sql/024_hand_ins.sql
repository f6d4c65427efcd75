-- Files handed in through the Upload page (or its REST twin), before their workflow takes them in: who
-- handed in which inbox file. Intake takes a web file in only for that user's run (another maker who
-- read the file's name in a run's parameters cannot start a workflow on it as its maker), and the
-- page removes a web file from the inbox once its upload is recorded (intake keeps its own copy).
-- Runs as benefitflow_owner.
CREATE TABLE intake.hand_ins (
    file_name     text        PRIMARY KEY CHECK (file_name ~ '^web-[A-Za-z0-9._-]+\.csv$'),
    dag_id        text        NOT NULL,
    handed_in_by  text        NOT NULL,
    sha256        text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes    bigint      NOT NULL CHECK (size_bytes > 0),
    received_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE intake.hand_ins IS
    'Files handed in through the Upload page: only their maker''s run takes them in.';
GRANT SELECT, INSERT ON intake.hand_ins TO benefitflow_app;
