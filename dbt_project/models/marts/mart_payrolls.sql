-- One row per payroll for Superset: status, bills, amounts, paid and failed, and the share reconciled.
-- A view over payrolls (itself a view), so a payroll waiting for approval shows at once.
{{ config(materialized='view') }}
select
    payroll_name,
    cycle_code,
    plan_code,
    payment_point,
    status,
    bills,
    total_amount,
    bills_paid,
    amount_paid,
    bills_failed,
    amount_failed,
    bills - bills_paid - bills_failed as bills_open,
    case when bills > 0 then round((bills_paid + bills_failed)::numeric / bills, 4) end as reconciliation_rate,
    approved_at
from {{ ref('payrolls') }}
