-- One row per plan and cycle for Superset: bills and amounts due, paid, failed, held, still open, cancelled
-- (a merged duplicate's), and the share reconciled of the bills to pay. A cancelled bill is not due: the amount due
-- and the rates leave it out.
select
    cycles.plan_code,
    cycles.cycle_code,
    cycles.period_start,
    cycles.period_end,
    cycles.currency,
    cycles.bills,
    cycles.total_amount - cycles.amount_cancelled as amount_due,
    cycles.bills_paid,
    cycles.amount_paid,
    cycles.bills_failed,
    cycles.amount_failed,
    cycles.bills_held,
    cycles.bills_due as bills_open,
    cycles.bills_cancelled,
    cycles.amount_cancelled,
    round((cycles.bills_paid + cycles.bills_failed)::numeric / nullif(cycles.bills - cycles.bills_cancelled, 0), 4)
        as reconciliation_rate,
    round(cycles.bills_paid::numeric / nullif(cycles.bills - cycles.bills_cancelled, 0), 4) as paid_rate,
    cycles.opened_at
from {{ ref('payment_cycles') }} as cycles
