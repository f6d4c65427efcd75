-- State grows by the change, not by the registry. The current-state models over the ledger are dbt
-- incremental models: each publish takes in the commits the model has not taken in yet, finds the
-- entities those commits touched (through an index on each ledger table's commit_id) and rebuilds
-- only those rows. publishing.taken_in_commits says which commits each model has taken in.
--
-- Why a set of commits and not "commit_id above the last one seen": commit ids are handed out when a
-- commit's transaction starts, so a commit with a lower id can become visible after one with a higher
-- id, and a high-water mark would skip it for ever. The set is written in the same transaction as
-- the model's rows, so it cannot say more or less than the model holds. A model that reads other
-- incremental models takes in only commits all of them have taken in (dbt_project/macros/incremental_state.sql).
-- Runs as benefitflow_owner.

CREATE SCHEMA IF NOT EXISTS publishing AUTHORIZATION benefitflow_app;
GRANT USAGE ON SCHEMA publishing TO benefitflow_app;

CREATE TABLE publishing.taken_in_commits (
    model      text   NOT NULL,  -- schema.name of the dbt model, e.g. payments.bills
    commit_id  bigint NOT NULL REFERENCES ledger.commits (commit_id),
    take_in    bigint NOT NULL,  -- which run of the model took it in (publishing.take_ins)
    taken_in_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, commit_id)
);
CREATE INDEX taken_in_commits_by_take_in ON publishing.taken_in_commits (model, take_in);
CREATE SEQUENCE publishing.take_ins;
ALTER TABLE publishing.taken_in_commits OWNER TO benefitflow_app;
ALTER SEQUENCE publishing.take_ins OWNER TO benefitflow_app;
COMMENT ON TABLE publishing.taken_in_commits IS
    'The ledger commits each incremental state model has taken in; written by the model''s own run, in its transaction.';

-- A state model rebuilt whole reads the ledger while no commit is under way, so that the commits it takes in
-- are exactly those it reads. A commit inserts its ledger.commits row first: SHARE mode makes it wait
-- there (and waits for one already past it), and lets whole rebuilds run side by side.
CREATE FUNCTION publishing.hold_off_commits() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
AS $$
BEGIN
    LOCK TABLE ledger.commits IN SHARE MODE;
END;
$$;
REVOKE ALL ON FUNCTION publishing.hold_off_commits() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION publishing.hold_off_commits() TO benefitflow_app;

-- Finding a commit's rows: the ledger tables state models read without such an index yet. B-trees, not
-- BRIN: a BRIN index reads every block range not summarized yet, i.e. all of a big commit's rows until
-- a vacuum gets to them, which made a ten-row correction after a million-row payroll read that payroll.
-- Commit ids grow, so each insert lands at the index's right edge (cheap).
CREATE INDEX bill_events_by_commit ON ledger.bill_events (commit_id);
CREATE INDEX payroll_bills_by_commit ON ledger.payroll_bills (commit_id);
CREATE INDEX households_by_commit ON ledger.households (commit_id);
CREATE INDEX grievances_by_commit ON ledger.grievances (commit_id);
CREATE INDEX grievance_events_by_commit ON ledger.grievance_events (commit_id);
