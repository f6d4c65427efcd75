-- Every plan's payment cycles with their bills' numbers and amounts (due, paid, failed, held).
select
    cycles.cycle_code,
    cycles.plan_code,
    cycles.period_start,
    cycles.period_end,
    min(bills.currency) as currency,
    count(bills.bill_id) as bills,
    coalesce(sum(bills.amount), 0) as total_amount,
    count(*) filter (where bills.status = 'HELD') as bills_held,
    count(*) filter (where bills.status = 'DUE') as bills_due,
    count(*) filter (where bills.status = 'PAID') as bills_paid,
    coalesce(sum(bills.amount_paid), 0) as amount_paid,
    count(*) filter (where bills.status = 'FAILED') as bills_failed,
    coalesce(sum(bills.amount) filter (where bills.status = 'FAILED'), 0) as amount_failed,
    cycles.recorded_at as opened_at
from {{ ref('stg_ledger__payment_cycles') }} as cycles
left join {{ ref('bills') }} as bills using (cycle_code, plan_code)
group by cycles.cycle_code, cycles.plan_code, cycles.period_start, cycles.period_end, cycles.recorded_at
