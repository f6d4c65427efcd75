-- A bill can be CANCELLED: where a merge of duplicate records finds the person billed twice in a cycle, it cancels
-- one of the two bills (an unpaid one, never one in a payroll that is out for payment), so the same person is not
-- paid twice. An unmerge REINSTATES the bills its merge cancelled: each is again what it was before (due, held, or
-- failed in its payroll).
-- While cancelled, a bill takes no other event (paid, failed, released, moved) and no payroll takes it, whatever the
-- workflow: the database refuses. A bill is cancelled while it has more cancellations than reinstatements; its
-- status otherwise is its latest other event's (or, with none, DUE or HELD as billed). Runs as benefitflow_owner.

ALTER TABLE ledger.bill_events DROP CONSTRAINT bill_events_status_check;
ALTER TABLE ledger.bill_events ADD CONSTRAINT bill_events_status_check
    CHECK (status IN ('DUE', 'PAID', 'FAILED', 'CANCELLED', 'REINSTATED'));
ALTER TABLE ledger.bill_events ADD CONSTRAINT cancelled_outside_payrolls
    CHECK (status NOT IN ('CANCELLED', 'REINSTATED') OR payroll_id IS NULL);

-- Few bills are ever cancelled: the checks below read this small index, never the whole event log.
CREATE INDEX bill_events_cancelled ON ledger.bill_events (bill_id, commit_id, status)
    WHERE status IN ('CANCELLED', 'REINSTATED');

-- The bills cancelled now (more cancellations than reinstatements).
CREATE FUNCTION ledger.cancelled_bills() RETURNS TABLE (bill_id uuid)
LANGUAGE sql STABLE AS $$
    SELECT e.bill_id FROM ledger.bill_events e
    WHERE e.status IN ('CANCELLED', 'REINSTATED')
    GROUP BY e.bill_id
    HAVING count(*) FILTER (WHERE e.status = 'CANCELLED') > count(*) FILTER (WHERE e.status = 'REINSTATED')
$$;
GRANT EXECUTE ON FUNCTION ledger.cancelled_bills() TO benefitflow_app;

-- One check per statement (a reconciliation appends a million events at once): the few bills ever cancelled against
-- the statement's new rows. With its new rows, a bill of a new cancellation has been cancelled once more than
-- reinstated, and a bill of any other new row (a reinstatement, a payment, a failure, a release, a move) as often:
-- a cancelled bill takes nothing but a reinstatement, and only a cancelled bill is reinstated, once. A reinstatement
-- comes only from the unmerge of a pair one of whose two records the bill is for.
CREATE FUNCTION ledger.refuse_events_of_cancelled_bills() RETURNS trigger
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
        SELECT 1 FROM new_rows n JOIN ledger.bills b ON b.bill_id = n.bill_id
        WHERE n.status = 'REINSTATED' AND NOT EXISTS (
            SELECT FROM ledger.duplicate_reviews r
            WHERE r.commit_id = n.commit_id AND r.decision = 'UNMERGED'
              AND b.individual_id IN (r.retired_id, r.survivor_id))
    ) THEN
        RAISE EXCEPTION 'a bill is reinstated only by the unmerge of its payee''s merge'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER bill_events_after_cancellation AFTER INSERT ON ledger.bill_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_events_of_cancelled_bills();

CREATE FUNCTION ledger.refuse_payrolls_of_cancelled_bills() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger.cancelled_bills() AS cancelled JOIN new_rows n USING (bill_id)) THEN
        RAISE EXCEPTION 'a cancelled bill is never put in a payroll' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER payroll_bills_not_cancelled AFTER INSERT ON ledger.payroll_bills
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_payrolls_of_cancelled_bills();

-- Merges and whom a bill pays. A bill is frozen at billing with the person it was for; once that person's enrolment
-- moves (a merge moves the retired record's enrolments to the survivor, an unmerge moves them back) or that person is
-- merged into another record, it pays the person the enrolment belongs to now, or that person's survivor. Derived
-- from the ledger each time (the two sets below are small): an unmerge gives every bill back, with nothing to undo.

-- Each record merged into another now (its latest version says so) with its survivor, through a chain of merges (a
-- survivor merged in turn into a third record).
CREATE FUNCTION ledger.merged_records() RETURNS TABLE (individual_id uuid, survivor_id uuid)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE merged AS (
        SELECT m.individual_id, m.merged_into FROM ledger.individual_versions m
        WHERE m.merged_into IS NOT NULL
          AND m.version = (SELECT max(l.version) FROM ledger.individual_versions l WHERE l.individual_id = m.individual_id)
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
GRANT EXECUTE ON FUNCTION ledger.merged_records() TO benefitflow_app;

-- Each enrolment a merge or an unmerge ever moved, with the person it belongs to now (its latest version).
CREATE FUNCTION ledger.moved_enrolments() RETURNS TABLE (beneficiary_id uuid, individual_id uuid)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (v.beneficiary_id) v.beneficiary_id, v.individual_id
    FROM ledger.beneficiary_versions v
    WHERE v.beneficiary_id IN (
        SELECT moved.beneficiary_id FROM ledger.beneficiary_versions moved
        WHERE moved.commit_id IN (SELECT r.commit_id FROM ledger.duplicate_reviews r WHERE r.decision <> 'DISMISSED'))
      AND v.individual_id IS NOT NULL
    ORDER BY v.beneficiary_id, v.version DESC
$$;
GRANT EXECUTE ON FUNCTION ledger.moved_enrolments() TO benefitflow_app;

-- The bills a merge cancels, as the ledger says now (not the state, which lags until the next publish): for each
-- pair (retired[i] merged into survivors[i]), each cycle and plan both records are billed in (by whom the bills pay
-- now: one person billed twice), one of the two bills, so that one is paid: the retired record's, unless only the survivor's is still
-- open. A bill is open when due or held in no payroll, or failed in the last payroll that had it; out when in a
-- payroll that has not paid or failed it yet (the provider may be paying it); paid. Two bills out, or one out and one
-- paid: nothing can be cancelled yet (waits_for_reconciliation: the merge waits). Both paid: paid twice already.
-- A bill of a cycle only one of them is billed in stays, and pays the survivor.
-- Found through the people's enrolments and their plans' cycles, by the billed-once index, reading the enrolments
-- once for all pairs: an index of the bills by individual would cost every payment cycle's commit 3 to 5 s more per
-- million bills (measured: 5.6 s -> 8.6-10.6 s).
CREATE FUNCTION ledger.bills_paid_twice(retired uuid[], survivors uuid[])
RETURNS TABLE (retired_id uuid, cycle_code text, plan_code text, bill_id uuid, amount numeric, currency text,
               waits_for_reconciliation boolean, paid_twice boolean)
LANGUAGE sql STABLE AS $$
    WITH pairs AS (
        SELECT DISTINCT pair.retired_id, pair.survivor_id FROM unnest(retired, survivors) AS pair (retired_id, survivor_id)
    ),
    billed AS MATERIALIZED (
        SELECT bl.bill_id, payee.individual_id, bl.cycle_code, bl.plan_code, bl.amount, bl.currency,
               CASE WHEN latest.status = 'PAID' THEN 'paid'
                    WHEN latest.status = 'FAILED' THEN 'open'
                    WHEN EXISTS (SELECT FROM ledger.payroll_bills pb WHERE pb.bill_id = bl.bill_id) THEN 'out'
                    ELSE 'open' END AS state
        FROM (SELECT DISTINCT v.beneficiary_id, v.plan_code FROM ledger.beneficiary_versions v
              WHERE v.individual_id = ANY (retired || survivors)) AS e
        JOIN ledger.payment_cycles c ON c.plan_code = e.plan_code
        JOIN ledger.bills bl
          ON bl.cycle_code = c.cycle_code AND bl.plan_code = c.plan_code AND bl.beneficiary_id = e.beneficiary_id
        LEFT JOIN ledger.moved_enrolments() moved ON moved.beneficiary_id = bl.beneficiary_id
        LEFT JOIN ledger.merged_records() merged ON merged.individual_id = coalesce(moved.individual_id, bl.individual_id)
        -- whom the bill pays now (as payments.bills says): a bill an earlier merge moved counts for its payee
        CROSS JOIN LATERAL (
            SELECT coalesce(merged.survivor_id, moved.individual_id, bl.individual_id) AS individual_id
        ) AS payee
        LEFT JOIN LATERAL (
            SELECT ev.status FROM ledger.bill_events ev
            WHERE ev.bill_id = bl.bill_id AND ev.status IN ('DUE', 'PAID', 'FAILED')
            ORDER BY ev.commit_id DESC LIMIT 1
        ) AS latest ON true
        WHERE payee.individual_id = ANY (retired || survivors) AND bl.individual_id IS NOT NULL
          AND bl.bill_id NOT IN (SELECT cancelled.bill_id FROM ledger.cancelled_bills() AS cancelled)
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
GRANT EXECUTE ON FUNCTION ledger.bills_paid_twice(uuid[], uuid[]) TO benefitflow_app;

-- The records ever merged into another, a few among millions: ledger.merged_records() finds them without reading
-- every version.
CREATE INDEX individual_versions_merged ON ledger.individual_versions (individual_id) WHERE merged_into IS NOT NULL;

-- An unmerge undoes its merge's graduations: an enrolment the merge graduated as a duplicate (the survivor was in the
-- plan already) goes back to the status it had. The one change outside ledger.beneficiary_status_transitions, allowed
-- only to the unmerge of that pair (its review is in the same commit), from the graduation its merge wrote.
CREATE OR REPLACE FUNCTION ledger.refuse_forbidden_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_rows n
        JOIN ledger.beneficiary_versions p ON p.beneficiary_id = n.beneficiary_id AND p.version = n.version - 1
        WHERE n.version > 1
          AND p.status <> n.status
          AND NOT EXISTS (SELECT 1 FROM ledger.beneficiary_status_transitions t
                          WHERE t.from_status = p.status AND t.to_status = n.status)
          AND NOT (p.status = 'GRADUATED' AND EXISTS (
                SELECT 1 FROM ledger.duplicate_reviews unmerge
                JOIN ledger.duplicate_reviews merge ON merge.candidate_id = unmerge.candidate_id
                                                   AND merge.decision = 'CONFIRMED' AND merge.commit_id = p.commit_id
                WHERE unmerge.commit_id = n.commit_id AND unmerge.decision = 'UNMERGED'))
    ) OR EXISTS (SELECT 1 FROM new_rows n WHERE n.version = 1 AND n.status NOT IN ('POTENTIAL', 'ACTIVE')) THEN
        RAISE EXCEPTION 'beneficiary status change not in ledger.beneficiary_status_transitions'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
