-- Checks of a provider's payroll answers GX cannot express (payroll_reconciliation.py runs them, in this
-- order: workflows/row_checks.py).

-- name: code_unknown
SELECT {upload}, row_number, 'code', 'code:unknown', code, 'no bill with this code', 'critical'
FROM intake.{checked} WHERE code IS NOT NULL AND bill_id IS NULL

-- name: code_not_in_payroll
SELECT {upload}, row_number, 'code', 'code:not_in_payroll', code,
       format('bill %s is not in payroll %s', code, {payroll}), 'critical'
FROM intake.{checked} WHERE bill_id IS NOT NULL AND NOT was_in_payroll

-- name: code_moved
SELECT {upload}, row_number, 'code', 'code:moved', code,
       format('bill %s moved from payroll %s to %s: the row is stale', code, {payroll}, bill_payroll_name),
       'critical'
FROM intake.{checked} WHERE was_in_payroll AND bill_payroll_name <> {payroll}

-- name: status_stale
SELECT {upload}, row_number, 'status', 'status:stale', status,
       format('bill %s is %s now, the file says %s: the row is stale', code, bill_status, status), 'critical'
FROM intake.{checked}
WHERE was_in_payroll AND bill_payroll_name = {payroll} AND upper(status) IS DISTINCT FROM bill_status

-- name: receipt_required
SELECT {upload}, row_number, 'receipt', 'receipt:required', NULL, 'a paid row needs the provider''s receipt',
       'critical'
FROM intake.{checked} WHERE paid_answer = 'yes' AND receipt IS NULL

-- name: amount_mismatch
SELECT {upload}, row_number, 'amount', 'amount:mismatch', coalesce(amount_paid, amount)::text,
       format('the amount due for bill %s is %s, the file says %s', code, amount_due,
              coalesce(amount_paid, amount)), 'critical'
FROM intake.{checked}
WHERE bill_id IS NOT NULL
  AND ((amount IS NOT NULL AND amount <> amount_due)
       OR (paid_answer = 'yes' AND amount_paid IS NOT NULL AND amount_paid <> amount_due))

-- name: payroll_name_other_payroll
SELECT {upload}, row_number, 'payroll_name', 'payroll_name:other_payroll', payroll_name,
       format('this row is of payroll %s, not %s', payroll_name, {payroll}), 'critical'
FROM intake.{checked} WHERE payroll_name IS NOT NULL AND payroll_name <> {payroll}
