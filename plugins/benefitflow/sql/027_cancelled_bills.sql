-- A bill can be CANCELLED: a merge of duplicate records cancels the retired record's unpaid bills (due, held or
-- failed; never one in a payroll that is out for payment), so the same person is not paid twice. A cancelled
-- bill is final: no later event (paid, failed, released, moved) and no payroll may take it, whatever the
-- workflow; the database refuses. Runs as benefitflow_owner.

ALTER TABLE ledger.bill_events DROP CONSTRAINT bill_events_status_check;
ALTER TABLE ledger.bill_events ADD CONSTRAINT bill_events_status_check
    CHECK (status IN ('DUE', 'PAID', 'FAILED', 'CANCELLED'));
ALTER TABLE ledger.bill_events ADD CONSTRAINT cancelled_outside_payrolls
    CHECK (status <> 'CANCELLED' OR payroll_id IS NULL);

-- Few bills are ever cancelled: the checks below read this small index, never the whole event log.
CREATE INDEX bill_events_cancelled ON ledger.bill_events (bill_id, commit_id) WHERE status = 'CANCELLED';

-- One check per statement (a reconciliation appends a million events at once): the cancelled bills, a small set,
-- against the statement's new rows. A cancellation is itself a new row: only another statement's counts.
CREATE FUNCTION ledger.refuse_events_of_cancelled_bills() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM (SELECT c.bill_id, c.commit_id FROM ledger.bill_events c WHERE c.status = 'CANCELLED') AS cancelled
        JOIN new_rows n ON n.bill_id = cancelled.bill_id
        WHERE NOT (n.status = 'CANCELLED' AND n.commit_id = cancelled.commit_id)
    ) THEN
        RAISE EXCEPTION 'a cancelled bill is final: it is never paid, failed, released or moved again'
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
    IF EXISTS (
        SELECT 1
        FROM (SELECT c.bill_id FROM ledger.bill_events c WHERE c.status = 'CANCELLED') AS cancelled
        JOIN new_rows n ON n.bill_id = cancelled.bill_id
    ) THEN
        RAISE EXCEPTION 'a cancelled bill is never put in a payroll' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER payroll_bills_not_cancelled AFTER INSERT ON ledger.payroll_bills
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_payrolls_of_cancelled_bills();

-- The bills of these individuals that are not settled, as the ledger says now (not the state, which lags until the
-- next publish): due or held (in no payroll, or moved into one), or failed in the last payroll that had them. Those
-- out for payment (in a payroll that has not paid or failed them yet) a merge cannot cancel: the provider may be
-- paying them. A duplicates_review proposal shows these and its commit cancels exactly the same ones.
-- Found through the people's enrolments and their plans' cycles, by the billed-once index: an index of the bills by
-- individual would cost every payment cycle's commit 3 to 5 s more per million bills (measured: 5.6 s -> 8.6-10.6 s).
CREATE FUNCTION ledger.unsettled_bills(individuals uuid[])
RETURNS TABLE (individual_id uuid, bill_id uuid, amount numeric, currency text, out_for_payment boolean)
LANGUAGE sql STABLE AS $$
    WITH enrolments AS (
        SELECT DISTINCT v.beneficiary_id, v.plan_code FROM ledger.beneficiary_versions v
        WHERE v.individual_id = ANY (individuals)
    )
    SELECT bl.individual_id, bl.bill_id, bl.amount, bl.currency,
           coalesce(latest.status, 'DUE') = 'DUE'
               AND EXISTS (SELECT FROM ledger.payroll_bills pb WHERE pb.bill_id = bl.bill_id)
    FROM enrolments e
    JOIN ledger.payment_cycles c ON c.plan_code = e.plan_code
    JOIN ledger.bills bl
      ON bl.cycle_code = c.cycle_code AND bl.plan_code = c.plan_code AND bl.beneficiary_id = e.beneficiary_id
    LEFT JOIN LATERAL (
        SELECT ev.status FROM ledger.bill_events ev WHERE ev.bill_id = bl.bill_id ORDER BY ev.commit_id DESC LIMIT 1
    ) AS latest ON true
    WHERE bl.individual_id = ANY (individuals) AND coalesce(latest.status, 'DUE') IN ('DUE', 'FAILED')
$$;
GRANT EXECUTE ON FUNCTION ledger.unsettled_bills(uuid[]) TO benefitflow_app;

-- The records ever merged into another, a few among millions: grievances (and every model that follows a merged
-- record to its survivor) find them without reading every version.
CREATE INDEX individual_versions_merged ON ledger.individual_versions (individual_id) WHERE merged_into IS NOT NULL;
