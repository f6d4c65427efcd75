-- One row per plan and cycle for Superset: bills and amounts due, paid, failed, held, still open,
-- and the share reconciled.
select
    cycles.plan_code,
    cycles.cycle_code,
    cycles.period_start,
    cycles.period_end,
    cycles.currency,
    cycles.bills,
    cycles.total_amount as amount_due,
    cycles.bills_paid,
    cycles.amount_paid,
    cycles.bills_failed,
    cycles.amount_failed,
    cycles.bills_held,
    cycles.bills_due as bills_open,
    case when cycles.bills > 0
        then round((cycles.bills_paid + cycles.bills_failed)::numeric / cycles.bills, 4)
    end as reconciliation_rate,
    case when cycles.bills > 0 then round(cycles.bills_paid::numeric / cycles.bills, 4) end as paid_rate,
    cycles.opened_at
from {{ ref('payment_cycles') }} as cycles
