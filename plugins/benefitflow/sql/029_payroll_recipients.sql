-- Whom a payroll paid, kept with each of its lines. Until now the ledger kept the payroll's file and its sha256, not
-- whom each line paid: a bill that paid a survivor while two records were merged counted, once they were unmerged, for
-- the record it was billed to again, and a second run of the cycle billed the survivor, who had been paid already.
-- Now a bill out for payment or paid counts for whom its payroll paid (or that person's survivor), until it fails;
-- the payroll's file is written from the recorded recipients, and an unmerge's checker is told which payments went
-- to the other record while the two were merged. Runs as benefitflow_owner.

-- NULL on the lines of payrolls committed before this migration: they count for whom the bill pays now.
ALTER TABLE ledger.payroll_bills ADD COLUMN recipient_id uuid;
COMMENT ON COLUMN ledger.payroll_bills.recipient_id IS
    'The individual the payroll pays for this bill (its file''s row): the bill''s payee, or a household''s primary '
    'recipient (else its head), when the payroll was committed. NULL for payrolls committed before migration 029.';
-- A merge looks up the bills paid to either record (few per person).
CREATE INDEX payroll_bills_by_recipient ON ledger.payroll_bills (recipient_id);

-- Each bill with whom it paid or pays: while it is out for payment or paid (its latest payroll line, not failed
-- since), the recipient of that line, or that person's survivor once merged; otherwise its payee now
-- (ledger.bill_payees; none for a household's bill). What "paid twice" is judged by: a merge's search for double
-- bills, a payment cycle's commit. A LATERAL per bill: read it for a few bills, or a cycle's on a rare path.
CREATE VIEW ledger.bill_recipients AS
SELECT bp.bill_id, bp.bill_number, bp.cycle_code, bp.plan_code, bp.beneficiary_id, bp.individual_id,
       bp.household_code, bp.amount, bp.currency, bp.commit_id, bp.payee_id, bp.cancelled,
       coalesce(paid_merged.survivor_id, sent.recipient_id, bp.payee_id) AS recipient_id
FROM ledger.bill_payees bp
LEFT JOIN LATERAL (
    SELECT pb.recipient_id FROM ledger.payroll_bills pb
    WHERE pb.bill_id = bp.bill_id
      AND 'FAILED' IS DISTINCT FROM (SELECT ev.status FROM ledger.bill_events ev
                                     WHERE ev.bill_id = bp.bill_id AND ev.status IN ('DUE', 'PAID', 'FAILED')
                                     ORDER BY ev.commit_id DESC LIMIT 1)
    ORDER BY pb.payroll_id DESC LIMIT 1
) AS sent ON true
LEFT JOIN ledger.merged_records() AS paid_merged ON paid_merged.individual_id = sent.recipient_id;
COMMENT ON VIEW ledger.bill_recipients IS
    'Each bill with whom it paid or pays (recipient_id): its payroll''s recipient while out for payment or paid, '
    'else its payee now.';
GRANT SELECT ON ledger.bill_recipients TO benefitflow_app;

-- As in migration 028, with each bill counted for whom it paid or pays (ledger.bill_recipients).
CREATE OR REPLACE FUNCTION ledger.bills_paid_twice(retired uuid[], survivors uuid[])
RETURNS TABLE (retired_id uuid, cycle_code text, plan_code text, bill_id uuid, amount numeric, currency text,
               waits_for_reconciliation boolean, paid_twice boolean)
LANGUAGE sql STABLE AS $$
    WITH pairs AS (
        SELECT DISTINCT pair.retired_id, pair.survivor_id FROM unnest(retired, survivors) AS pair (retired_id, survivor_id)
    ),
    records AS (  -- the pairs' records, and those merged into them earlier
        SELECT retired || survivors || ARRAY(
            SELECT earlier.individual_id FROM ledger.merged_records() AS earlier
            WHERE earlier.survivor_id = ANY (retired || survivors)) AS ids
    ),
    billed AS MATERIALIZED (
        SELECT bl.bill_id, bl.recipient_id AS individual_id, bl.cycle_code, bl.plan_code, bl.amount, bl.currency,
               CASE WHEN latest.status = 'PAID' THEN 'paid'
                    WHEN latest.status = 'FAILED' THEN 'open'
                    WHEN EXISTS (SELECT FROM ledger.payroll_bills pb WHERE pb.bill_id = bl.bill_id) THEN 'out'
                    ELSE 'open' END AS state
        FROM (SELECT v.beneficiary_id, v.plan_code FROM records CROSS JOIN ledger.beneficiary_versions v
              WHERE v.individual_id = ANY (records.ids)
              UNION  -- another record's bill a payroll paid to one of them (while merged, unmerged since)
              SELECT b.beneficiary_id, b.plan_code
              FROM records CROSS JOIN ledger.payroll_bills pb JOIN ledger.bills b ON b.bill_id = pb.bill_id
              WHERE pb.recipient_id = ANY (records.ids)) AS e
        JOIN ledger.payment_cycles c ON c.plan_code = e.plan_code
        JOIN ledger.bill_recipients bl
          ON bl.cycle_code = c.cycle_code AND bl.plan_code = c.plan_code AND bl.beneficiary_id = e.beneficiary_id
        LEFT JOIN LATERAL (
            SELECT ev.status FROM ledger.bill_events ev
            WHERE ev.bill_id = bl.bill_id AND ev.status IN ('DUE', 'PAID', 'FAILED')
            ORDER BY ev.commit_id DESC LIMIT 1
        ) AS latest ON true
        WHERE bl.recipient_id = ANY (retired || survivors) AND bl.individual_id IS NOT NULL AND NOT bl.cancelled
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

-- What an unmerge's checker is told: the bills of the retired record's enrolments that a payroll paid, or has out
-- for payment, to the survivor while the two were merged (its latest payroll line's recipient; not failed since).
-- Unmerged, they stay paid to the survivor (nobody is billed again for them in their cycle); the retired record was
-- not paid for those cycles.
CREATE FUNCTION ledger.bills_paid_to_survivor(retired uuid, survivor uuid)
RETURNS TABLE (bill_id uuid, amount numeric)
LANGUAGE sql STABLE AS $$
    SELECT b.bill_id, b.amount
    FROM ledger.bills b
    CROSS JOIN LATERAL (
        SELECT pb.recipient_id FROM ledger.payroll_bills pb WHERE pb.bill_id = b.bill_id
        ORDER BY pb.payroll_id DESC LIMIT 1
    ) AS sent
    WHERE b.beneficiary_id IN (SELECT v.beneficiary_id FROM ledger.beneficiary_versions v
                               WHERE v.individual_id = retired)
      AND sent.recipient_id = survivor
      AND 'FAILED' IS DISTINCT FROM (SELECT ev.status FROM ledger.bill_events ev
                                     WHERE ev.bill_id = b.bill_id AND ev.status IN ('DUE', 'PAID', 'FAILED')
                                     ORDER BY ev.commit_id DESC LIMIT 1)
$$;
GRANT EXECUTE ON FUNCTION ledger.bills_paid_to_survivor(uuid, uuid) TO benefitflow_app;
