-- Whom a household's bill pays, read from the ledger. Until now ledger.bill_payees named no payee for a household's
-- bill: the payroll's commit compared its recipients with the registry's published state, and a payment cycle's
-- commit could not see that a household it bills is paid, now, through someone an earlier bill of the cycle paid (a
-- merge of duplicate records, or a move to another household, committed since the proposal and not yet published).
-- Now a household's bill pays its primary recipient, else its head, among its members as the ledger has them.
-- Runs as benefitflow_owner.

-- A household's members now: each person's latest version names it and is not merged into another record. The
-- pick among two primary recipients or heads (commits keep one of each) is registry.households': the member whose
-- latest version was committed first, then the lowest id. Found by the household index; a payroll's commit asks it
-- once per household bill.
CREATE FUNCTION ledger.household_recipient(code text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT v.individual_id FROM ledger.individual_versions v
    WHERE v.household_code = code AND v.merged_into IS NULL AND (v.recipient_type = 'PRIMARY' OR v.role = 'HEAD')
      AND NOT EXISTS (SELECT FROM ledger.individual_versions later
                      WHERE later.individual_id = v.individual_id AND later.version > v.version)
    ORDER BY v.recipient_type IS NOT DISTINCT FROM 'PRIMARY' DESC, v.commit_id, v.individual_id
    LIMIT 1
$$;
COMMENT ON FUNCTION ledger.household_recipient(text) IS
    'Whom a household''s bill pays now: its primary recipient, else its head, as the ledger has its members.';
GRANT EXECUTE ON FUNCTION ledger.household_recipient(text) TO benefitflow_app;

-- As in migration 028, with a household's bill paying its recipient now (payee_id was NULL for it).
CREATE OR REPLACE VIEW ledger.bill_payees AS
SELECT bl.bill_id, bl.bill_number, bl.bill_code, bl.cycle_code, bl.plan_code, bl.plan_version, bl.beneficiary_id,
       bl.individual_id, bl.household_code, bl.amount, bl.currency, bl.held, bl.commit_id,
       coalesce(merged.survivor_id, moved.individual_id, bl.individual_id,
                ledger.household_recipient(bl.household_code)) AS payee_id,
       cancelled.bill_id IS NOT NULL AS cancelled
FROM ledger.bills bl
LEFT JOIN ledger.moved_enrolments() moved ON moved.beneficiary_id = bl.beneficiary_id AND bl.individual_id IS NOT NULL
LEFT JOIN ledger.merged_records() merged ON merged.individual_id = coalesce(moved.individual_id, bl.individual_id)
LEFT JOIN ledger.cancelled_bills() cancelled ON cancelled.bill_id = bl.bill_id;
COMMENT ON VIEW ledger.bill_payees IS
    'Each bill with whom it pays now (payee_id: the person, or a household''s primary recipient, else its head; NULL '
    'for a household without either) and whether it is cancelled now.';
