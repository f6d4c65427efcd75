-- Whom a bill pays now, in one place (migration 027 derived it in three): a bill is frozen at billing with the person
-- it was for; once that person's enrolment moved (a merge or an unmerge of duplicate records) or that person was
-- merged into another record, it pays the person the enrolment belongs to now, or that person's survivor. With it,
-- whether the bill is cancelled now. The payroll file, a merge's search for double bills and a payment cycle's
-- commit (one bill per person and cycle) read this view; payments.bills derives the same in dbt. A plain view: a
-- query's conditions on the bills reach their indexes, and the three sets it joins are small. A household's bill
-- (no individual) has no payee here: the household's primary recipient, in the registry's current state, is paid.
-- Runs as benefitflow_owner.

CREATE VIEW ledger.bill_payees AS
SELECT bl.bill_id, bl.bill_number, bl.bill_code, bl.cycle_code, bl.plan_code, bl.plan_version, bl.beneficiary_id,
       bl.individual_id, bl.household_code, bl.amount, bl.currency, bl.held, bl.commit_id,
       coalesce(merged.survivor_id, moved.individual_id, bl.individual_id) AS payee_id,
       cancelled.bill_id IS NOT NULL AS cancelled
FROM ledger.bills bl
LEFT JOIN ledger.moved_enrolments() moved ON moved.beneficiary_id = bl.beneficiary_id AND bl.individual_id IS NOT NULL
LEFT JOIN ledger.merged_records() merged ON merged.individual_id = coalesce(moved.individual_id, bl.individual_id)
LEFT JOIN ledger.cancelled_bills() cancelled ON cancelled.bill_id = bl.bill_id;
COMMENT ON VIEW ledger.bill_payees IS
    'Each bill with whom it pays now (payee_id; NULL for a household''s bill) and whether it is cancelled now.';
GRANT SELECT ON ledger.bill_payees TO benefitflow_app;

-- As in migration 027, whom the bills pay read from the view; and the bills found through the enrolments of the
-- records merged into either record earlier, too: a bill of a record merged into the retired one (A into B, now B into
-- C) pays the retired record, though no version of its enrolment names it (a graduated enrolment keeps its person).
CREATE OR REPLACE FUNCTION ledger.bills_paid_twice(retired uuid[], survivors uuid[])
RETURNS TABLE (retired_id uuid, cycle_code text, plan_code text, bill_id uuid, amount numeric, currency text,
               waits_for_reconciliation boolean, paid_twice boolean)
LANGUAGE sql STABLE AS $$
    WITH pairs AS (
        SELECT DISTINCT pair.retired_id, pair.survivor_id FROM unnest(retired, survivors) AS pair (retired_id, survivor_id)
    ),
    billed AS MATERIALIZED (
        SELECT bl.bill_id, bl.payee_id AS individual_id, bl.cycle_code, bl.plan_code, bl.amount, bl.currency,
               CASE WHEN latest.status = 'PAID' THEN 'paid'
                    WHEN latest.status = 'FAILED' THEN 'open'
                    WHEN EXISTS (SELECT FROM ledger.payroll_bills pb WHERE pb.bill_id = bl.bill_id) THEN 'out'
                    ELSE 'open' END AS state
        FROM (SELECT DISTINCT v.beneficiary_id, v.plan_code FROM ledger.beneficiary_versions v
              WHERE v.individual_id = ANY (retired || survivors || ARRAY(
                  SELECT earlier.individual_id FROM ledger.merged_records() AS earlier
                  WHERE earlier.survivor_id = ANY (retired || survivors)))) AS e
        JOIN ledger.payment_cycles c ON c.plan_code = e.plan_code
        JOIN ledger.bill_payees bl
          ON bl.cycle_code = c.cycle_code AND bl.plan_code = c.plan_code AND bl.beneficiary_id = e.beneficiary_id
        LEFT JOIN LATERAL (
            SELECT ev.status FROM ledger.bill_events ev
            WHERE ev.bill_id = bl.bill_id AND ev.status IN ('DUE', 'PAID', 'FAILED')
            ORDER BY ev.commit_id DESC LIMIT 1
        ) AS latest ON true
        WHERE bl.payee_id = ANY (retired || survivors) AND bl.individual_id IS NOT NULL AND NOT bl.cancelled
    ),
    twice AS (
        SELECT DISTINCT ON (r.bill_id) p.retired_id, r.cycle_code, r.plan_code,
               r.bill_id AS retired_bill, r.state AS retired_state, r.amount AS retired_amount, r.currency,
               s.bill_id AS survivor_bill, s.state AS survivor_state, s.amount AS survivor_amount
        FROM pairs p
        JOIN billed r ON r.individual_id = p.retired_id
        JOIN billed s ON s.individual_id = p.survivor_id AND s.cycle_code = r.cycle_code AND s.plan_code = r.plan_code
        ORDER BY r.bill_id, s.bill_id
    )
    SELECT t.retired_id, t.cycle_code, t.plan_code,
           CASE WHEN t.retired_state = 'open' THEN t.retired_bill
                WHEN t.survivor_state = 'open' THEN t.survivor_bill END,
           CASE WHEN t.retired_state = 'open' THEN t.retired_amount
                WHEN t.survivor_state = 'open' THEN t.survivor_amount END,
           t.currency,
           'open' NOT IN (t.retired_state, t.survivor_state) AND 'out' IN (t.retired_state, t.survivor_state),
           t.retired_state = 'paid' AND t.survivor_state = 'paid'
    FROM twice t
$$;

-- An unmerge reinstates exactly what its merge cancelled for that pair. A merge commit may merge several pairs, and
-- a bill it cancels was billed to one of the pair's records or to a record merged into one of them before that
-- commit (A into B earlier; now B into C). Which records were merged into which is read as it stood before the merge
-- commit (not now: a record merged by the same commit, or later, into one of the pair would otherwise count, and
-- another pair's cancelled bill would be reinstated). The database refuses any other reinstatement.

-- ledger.merged_records() (migration 027) as it stood before a commit: each record merged into another by an earlier
-- commit (its latest version before that commit says so), with its survivor through a chain of merges.
CREATE FUNCTION ledger.merged_records_before(before_commit bigint) RETURNS TABLE (individual_id uuid, survivor_id uuid)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE merged AS (
        SELECT m.individual_id, m.merged_into FROM ledger.individual_versions m
        WHERE m.merged_into IS NOT NULL AND m.commit_id < before_commit
          AND m.version = (SELECT max(l.version) FROM ledger.individual_versions l
                           WHERE l.individual_id = m.individual_id AND l.commit_id < before_commit)
    ),
    chain AS (
        SELECT merged.individual_id, merged.merged_into AS survivor_id, 1 AS depth FROM merged
        UNION ALL
        SELECT chain.individual_id, merged.merged_into, chain.depth + 1
        FROM chain JOIN merged ON merged.individual_id = chain.survivor_id
        WHERE chain.depth < 50
    )
    SELECT DISTINCT ON (chain.individual_id) chain.individual_id, chain.survivor_id
    FROM chain ORDER BY chain.individual_id, chain.depth DESC
$$;
GRANT EXECUTE ON FUNCTION ledger.merged_records_before(bigint) TO benefitflow_app;

-- The records merged now: as they stand before any commit to come (one definition of the chain).
CREATE OR REPLACE FUNCTION ledger.merged_records() RETURNS TABLE (individual_id uuid, survivor_id uuid)
LANGUAGE sql STABLE AS $$
    SELECT merged.individual_id, merged.survivor_id FROM ledger.merged_records_before(9223372036854775807) AS merged
$$;

-- The bills the unmerge of a pair reinstates: those its merge (the pair's latest CONFIRMED review before the unmerge)
-- cancelled and that were billed to one of the two records, or to a record merged into one of them before the merge.
-- Nothing else reinstates them (the trigger below), and a merge again after the unmerge is a merge of its own.
CREATE FUNCTION ledger.bills_reinstated_by_unmerge(candidate bigint, retired uuid, survivor uuid, unmerge_commit bigint)
RETURNS TABLE (bill_id uuid)
LANGUAGE sql STABLE AS $$
    WITH merge AS (
        SELECT r.commit_id FROM ledger.duplicate_reviews r
        WHERE r.candidate_id = candidate AND r.decision = 'CONFIRMED' AND r.commit_id < unmerge_commit
        ORDER BY r.version DESC LIMIT 1
    )
    SELECT cancelled.bill_id
    FROM merge
    JOIN ledger.bill_events cancelled ON cancelled.commit_id = merge.commit_id AND cancelled.status = 'CANCELLED'
    JOIN ledger.bills b ON b.bill_id = cancelled.bill_id
    WHERE b.individual_id IN (retired, survivor)
       OR b.individual_id IN (SELECT earlier.individual_id FROM ledger.merged_records_before(merge.commit_id) earlier
                              WHERE earlier.survivor_id IN (retired, survivor))
$$;
GRANT EXECUTE ON FUNCTION ledger.bills_reinstated_by_unmerge(bigint, uuid, uuid, bigint) TO benefitflow_app;

CREATE OR REPLACE FUNCTION ledger.refuse_events_of_cancelled_bills() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM (SELECT e.bill_id, e.commit_id, e.status FROM ledger.bill_events e
              WHERE e.status IN ('CANCELLED', 'REINSTATED')) AS undo
        JOIN new_rows n ON n.bill_id = undo.bill_id
        GROUP BY n.bill_id, n.commit_id, n.status
        HAVING count(*) FILTER (WHERE undo.status = 'CANCELLED') - count(*) FILTER (WHERE undo.status = 'REINSTATED')
             <> CASE n.status WHEN 'CANCELLED' THEN 1 ELSE 0 END
    ) THEN
        RAISE EXCEPTION 'a cancelled bill is never paid, failed, released, moved or cancelled again; only the unmerge '
                        'of the merge that cancelled it reinstates it' USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (
        SELECT 1 FROM new_rows n
        WHERE n.status = 'REINSTATED' AND NOT EXISTS (
            SELECT FROM ledger.duplicate_reviews r
            CROSS JOIN LATERAL ledger.bills_reinstated_by_unmerge(r.candidate_id, r.retired_id, r.survivor_id,
                                                                  r.commit_id) AS its
            WHERE r.commit_id = n.commit_id AND r.decision = 'UNMERGED' AND its.bill_id = n.bill_id)
    ) THEN
        RAISE EXCEPTION 'a bill is reinstated only by the unmerge of the merge that cancelled it'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
