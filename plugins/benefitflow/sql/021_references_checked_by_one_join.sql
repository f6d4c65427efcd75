-- Each statement's reference check (migration 020) as one join over all the statement's rows, and the
-- two references left from intake's scratch tables to their upload or request checked the same way.
--
-- 1. The check asked for the first missing key with LIMIT 1. Expecting to stop early, the planner
--    probed the parent's index once per inserted row (a nested loop), and with every key present it
--    never stopped early: at 1,000,000 payroll lines its three checks took 2.8 s. Asking for the
--    first missing key and how many rows miss theirs as one aggregate over all rows lets it hash the
--    parent instead: 1.5 s, of which 0.2 s each for the references to one commit and one payroll.
-- 2. intake.request_selection (what a request's criteria selected: 1,000,000 rows for a payment cycle
--    at a million beneficiaries) and intake.row_errors still had foreign keys, looked up and locked
--    once per row: 3.6 s of the 7.0 s it took to write a payment cycle's selection. Their parents,
--    uploads and requests, are kept for good (migration 020), so the same statement check holds.
-- Runs as benefitflow_owner.
CREATE OR REPLACE FUNCTION ledger.missing_reference_query(rows text, parent regclass, child_columns text[],
                                                           parent_columns text[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(
        'SELECT min(concat_ws('', '', %s)), count(*) FROM %s AS child WHERE %s'
        ' AND NOT EXISTS (SELECT FROM ONLY %s AS parent WHERE %s)',
        (SELECT string_agg(format('child.%I', c), ', ') FROM unnest(child_columns) AS c),
        rows,
        (SELECT string_agg(format('child.%I IS NOT NULL', c), ' AND ') FROM unnest(child_columns) AS c),
        parent,
        (SELECT string_agg(format('parent.%I = child.%I', p, c), ' AND ')
         FROM unnest(parent_columns, child_columns) AS k (p, c)))
$$;

-- Every foreign key of `child` to a table that keeps its records (append_only or records_kept) becomes a
-- statement trigger of the same name, as migration 020 did for the ledger; later tables declare their keys
-- and call this.
CREATE FUNCTION ledger.check_references_per_statement(child regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reference record;
BEGIN
    FOR reference IN
        SELECT k.conname, k.confrelid::oid AS parent,
               (SELECT string_agg(a.attname, ',' ORDER BY n.i) FROM unnest(k.conkey) WITH ORDINALITY AS n (attnum, i)
                JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = n.attnum) AS child_columns,
               (SELECT string_agg(a.attname, ',' ORDER BY n.i) FROM unnest(k.confkey) WITH ORDINALITY AS n (attnum, i)
                JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = n.attnum) AS parent_columns
        FROM pg_constraint k
        WHERE k.contype = 'f' AND k.conrelid = child
          AND EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = k.confrelid AND t.tgname IN ('append_only', 'records_kept'))
        ORDER BY k.conname
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', child, reference.conname);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS inserted'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_missing_references(%L, %L, %L, %L)',
                       reference.conname, child, reference.conname, reference.parent,
                       reference.child_columns, reference.parent_columns);
    END LOOP;
END;
$$;

SELECT ledger.check_references_per_statement('intake.request_selection');
SELECT ledger.check_references_per_statement('intake.row_errors');
