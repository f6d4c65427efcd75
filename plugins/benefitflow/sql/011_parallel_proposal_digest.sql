-- The proposal digest in parallel: the same value as migration 009's, at about half the time.
-- At 1,000,000 rows nearly all the cost is hashing each row and sorting the row hashes (3.0 s on
-- one core here); both now run in parallel workers, each sorting its share, and a Gather Merge
-- hands the aggregate the row hashes already in order (1.7 s on two cores). The order comes from
-- the subquery's ORDER BY, which PostgreSQL keeps for a plain aggregate over it; were it ever
-- lost, the digest would differ and commit would refuse — a false refusal, never a false match.
-- Starting workers is costed at nothing for this one query, which reads every row of its proposal;
-- a small proposal (under min_parallel_table_scan_size) still runs in one process.
-- Runs as benefitflow_owner.
CREATE OR REPLACE FUNCTION ledger.proposal_rows_digest(proposal regclass, key_column text, key_value bigint)
RETURNS bytea
LANGUAGE plpgsql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'iso_8601' SET extra_float_digits = 3
SET parallel_setup_cost = 0 SET parallel_tuple_cost = 0
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    digest bytea;
BEGIN
    EXECUTE format(
        'SELECT sha256(coalesce(string_agg(row_hash, ''''::bytea), ''''::bytea))'
        ' FROM (SELECT sha256(record_send(p)) AS row_hash FROM %s AS p WHERE %I = $1 ORDER BY 1) AS hashed',
        proposal, key_column)
    INTO digest USING key_value;
    RETURN digest;
END;
$$;
