-- The commits an incremental model's run takes in, as an array the planner can look at.
--
-- A model finds the rows its new commits touched with `commit_id = ANY (publishing.commits_taken_in(model))`.
-- As a sub-select on a setting, the planner could not know how many commits, nor which: it guessed from the
-- average commit (a million-row import among a handful of commits makes that hundreds of thousands of rows)
-- and hashed whole million-row tables for a ten-row change. A STABLE function called with constants is
-- evaluated while planning, for the estimates only (selfuncs' estimate_expression_value), so each id is
-- looked up in the column's statistics: a small commit is estimated small and found through its index.
-- It reads the setting the model's pre-hook set (dbt_project/macros/incremental_state.sql), in the
-- model's own transaction. Runs as benefitflow_owner.

CREATE FUNCTION publishing.commits_taken_in(model_name text) RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog
AS $$
    SELECT coalesce(array_agg(taken.commit_id ORDER BY taken.commit_id), '{}')
    FROM publishing.taken_in_commits AS taken
    WHERE taken.model = model_name AND taken.take_in = current_setting('benefitflow.take_in')::bigint
$$;
REVOKE ALL ON FUNCTION publishing.commits_taken_in(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION publishing.commits_taken_in(text) TO benefitflow_app;

-- When the model's previous run took commits in ('-infinity' before its first, or with no record of it): the
-- beneficiaries mart rebuilds the people who entered another age band since, a date range on an index the
-- planner can size; the models holding totals refuse to add to a table with no such record.
CREATE FUNCTION publishing.previous_take_in_at(model_name text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog
AS $$
    SELECT coalesce(max(taken.taken_in_at), '-infinity')
    FROM publishing.taken_in_commits AS taken
    WHERE taken.model = model_name AND taken.take_in <> current_setting('benefitflow.take_in')::bigint
$$;
REVOKE ALL ON FUNCTION publishing.previous_take_in_at(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION publishing.previous_take_in_at(text) TO benefitflow_app;
