-- Fresh planner statistics after any bulk append to the ledger, not only the payment tables (006).
--
-- The state models find what a commit touched through the commit's id, and the planner sizes that id from
-- the column's statistics (013). A commit of 140,000 people, not yet analyzed, was sized at one row: the
-- planner joined two sets it took for single rows in a nested loop, and a publish of seconds ran for
-- minutes. So every commit analyzes, before it ends, each ledger table it appended at least min_rows rows
-- to (ANALYZE counts the transaction's own rows). It may be called again later in the same commit: a table
-- is analyzed again only after min_rows more rows.
--
-- ANALYZE holds its lock until the commit ends, and waits for anyone else analyzing or vacuuming the table
-- (another bulk commit's whole transaction, an anti-wraparound vacuum). Statistics are an optimisation: after
-- lock_timeout the table is left as it is and the commit goes on. Note that a table's row count and size
-- (pg_class) change at once and stay if the commit rolls back; only the column statistics wait for it.
CREATE FUNCTION ledger.refresh_statistics(min_rows bigint) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '1s' AS $$
DECLARE
    appended record;
    analyzed text[] := '{}';
BEGIN
    IF min_rows < 1 THEN
        RAISE EXCEPTION 'ledger.refresh_statistics: min_rows must be at least 1 (got %)', min_rows;
    END IF;
    FOR appended IN
        SELECT relname, n_tup_ins FROM pg_catalog.pg_stat_xact_user_tables
        WHERE schemaname = 'ledger'
            AND n_tup_ins >= coalesce(nullif(current_setting('benefitflow.analyzed_at_rows.' || relname, true), ''),
                                      '0')::bigint + min_rows
        ORDER BY relname
    LOOP
        BEGIN
            EXECUTE format('ANALYZE ledger.%I', appended.relname);
        EXCEPTION WHEN lock_not_available THEN
            CONTINUE;
        END;
        PERFORM set_config('benefitflow.analyzed_at_rows.' || appended.relname, appended.n_tup_ins::text, true);
        analyzed := analyzed || appended.relname::text;
    END LOOP;
    RETURN analyzed;
END;
$$;
REVOKE ALL ON FUNCTION ledger.refresh_statistics(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.refresh_statistics(bigint) TO benefitflow_app;

DROP FUNCTION ledger.refresh_payment_statistics();
