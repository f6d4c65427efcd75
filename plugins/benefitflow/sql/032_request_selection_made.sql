-- Whether validate selected a request's set (a payroll's bills, an enrolment's people) into
-- intake.request_selection, for propose to read. That table is UNLOGGED (no write-ahead log for a
-- set of millions), so PostgreSQL empties it when it restarts after a crash: propose then finds a
-- request that made a selection with none left, and refuses to propose nothing (clear `validate`).
-- Runs as benefitflow_owner.
ALTER TABLE intake.requests ADD COLUMN selection_made boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN intake.requests.selection_made IS
    'validate put the request''s set in intake.request_selection (propose refuses when a crash emptied it)';
