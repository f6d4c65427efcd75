-- References between ledger tables checked once per INSERT statement instead of once per row.
-- A foreign key looks its parent up and locks the parent row for every row inserted: of the 17.7 s it
-- took here to append 859,000 individual versions, 10 s were those lookups (7.9 s without the keys).
-- Every parent of a ledger row is a record that is never removed nor renumbered: a ledger table refuses
-- UPDATE, DELETE and TRUNCATE to everyone (make_append_only), and uploads and requests, kept for good (an
-- upload's record is kept whatever happens to it), now refuse DELETE, TRUNCATE and a new key. So the only
-- thing a key still guards is the insert; that check is kept, set-based: after each INSERT, one anti-join
-- of the statement's rows (its transition table) against the parent refuses the whole statement with the
-- constraint's own name and SQLSTATE 23503, as the key did. Measured: 9.3 s for those 859,000 rows.
-- Runs as benefitflow_owner.
CREATE FUNCTION intake.refuse_losing_a_record() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE insufficient_privilege USING
        MESSAGE = format('%s.%s keeps every record: its rows are not deleted and their keys do not change',
                         TG_TABLE_SCHEMA, TG_TABLE_NAME);
END;
$$;
CREATE TRIGGER records_kept BEFORE DELETE OR TRUNCATE ON intake.uploads
    FOR EACH STATEMENT EXECUTE FUNCTION intake.refuse_losing_a_record();
CREATE TRIGGER record_keys_kept BEFORE UPDATE OF upload_id ON intake.uploads
    FOR EACH ROW WHEN (old.upload_id IS DISTINCT FROM new.upload_id) EXECUTE FUNCTION intake.refuse_losing_a_record();
CREATE TRIGGER records_kept BEFORE DELETE OR TRUNCATE ON intake.requests
    FOR EACH STATEMENT EXECUTE FUNCTION intake.refuse_losing_a_record();
CREATE TRIGGER record_keys_kept BEFORE UPDATE OF request_id ON intake.requests
    FOR EACH ROW WHEN (old.request_id IS DISTINCT FROM new.request_id) EXECUTE FUNCTION intake.refuse_losing_a_record();

-- The first key of `rows` (the trigger's transition table, or a whole ledger table) whose parent is missing,
-- and how many rows miss theirs; no row when every reference holds. MATCH SIMPLE: a key with a NULL is not checked.
CREATE FUNCTION ledger.missing_reference_query(rows text, parent regclass, child_columns text[],
                                               parent_columns text[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(
        'SELECT concat_ws('', '', %s), count(*) OVER () FROM %s AS child WHERE %s'
        ' AND NOT EXISTS (SELECT FROM ONLY %s AS parent WHERE %s) LIMIT 1',
        (SELECT string_agg(format('child.%I', c), ', ') FROM unnest(child_columns) AS c),
        rows,
        (SELECT string_agg(format('child.%I IS NOT NULL', c), ' AND ') FROM unnest(child_columns) AS c),
        parent,
        (SELECT string_agg(format('parent.%I = child.%I', p, c), ' AND ')
         FROM unnest(parent_columns, child_columns) AS k (p, c)))
$$;

CREATE FUNCTION ledger.refuse_missing_references() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    constraint_name text := TG_ARGV[0];
    parent regclass := TG_ARGV[1]::oid;  -- by oid: a renamed or recreated table is not the parent
    child_columns text[] := string_to_array(TG_ARGV[2], ',');
    missing text;
BEGIN
    EXECUTE ledger.missing_reference_query('inserted', parent, child_columns, string_to_array(TG_ARGV[3], ','))
    INTO missing;
    IF missing IS NOT NULL THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('insert or update on table "%s" violates foreign key constraint "%s"',
                             TG_TABLE_NAME, constraint_name),
            DETAIL = format('Key (%s)=(%s) is not present in table "%s".',
                            array_to_string(child_columns, ', '), missing, parent),
            CONSTRAINT = constraint_name, TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    RETURN NULL;
END;
$$;

-- Every reference checked again over whole tables (`make verify-audit`): a row appended while its table's
-- check was switched off or dropped by its owner, or a table restored without them, is found here.
CREATE FUNCTION ledger.reference_breaks()
RETURNS TABLE (constraint_name text, table_name text, missing_key text, rows bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reference record;
BEGIN
    FOR reference IN
        SELECT t.tgname::text AS name, t.tgrelid::regclass AS child, string_to_array(t.arguments, E'\\000') AS arguments
        FROM (SELECT tgname, tgrelid, encode(tgargs, 'escape') AS arguments FROM pg_trigger t
              JOIN pg_proc f ON f.oid = t.tgfoid AND f.proname = 'refuse_missing_references') AS t
        ORDER BY 2, 1
    LOOP
        constraint_name := reference.name;
        table_name := reference.child::text;
        EXECUTE ledger.missing_reference_query(format('ONLY %s', reference.child), reference.arguments[2]::oid,
                                               string_to_array(reference.arguments[3], ','),
                                               string_to_array(reference.arguments[4], ','))
        INTO missing_key, rows;
        IF missing_key IS NOT NULL THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION ledger.reference_breaks() TO benefitflow_app;

-- Each foreign key from a ledger table to such a parent becomes a statement trigger of the same name.
DO $$
DECLARE
    reference record;
BEGIN
    FOR reference IN
        SELECT k.conname,
               format('%I.%I', child_schema.nspname, child.relname) AS child,
               k.confrelid::oid AS parent,
               (SELECT string_agg(a.attname, ',' ORDER BY n.i) FROM unnest(k.conkey) WITH ORDINALITY AS n (attnum, i)
                JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = n.attnum) AS child_columns,
               (SELECT string_agg(a.attname, ',' ORDER BY n.i) FROM unnest(k.confkey) WITH ORDINALITY AS n (attnum, i)
                JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = n.attnum) AS parent_columns
        FROM pg_constraint k
        JOIN pg_class child ON child.oid = k.conrelid
        JOIN pg_namespace child_schema ON child_schema.oid = child.relnamespace
        WHERE k.contype = 'f' AND child_schema.nspname = 'ledger'
          AND EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = k.confrelid AND t.tgname IN ('append_only', 'records_kept'))
        ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', reference.child, reference.conname);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS inserted'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_missing_references(%L, %L, %L, %L)',
                       reference.conname, reference.child, reference.conname, reference.parent,
                       reference.child_columns, reference.parent_columns);
    END LOOP;
END;
$$;
