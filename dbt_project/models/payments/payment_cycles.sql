-- Every plan's payment cycles with their bills' numbers and amounts (due, paid, failed, held).
{{ config(materialized='incremental', unique_key=['cycle_code', 'plan_code'], incremental_strategy='delete+insert',
          on_schema_change='sync_all_columns', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run counts again the cycles whose bills its new commits touched.
-- depends_on: {{ ref('stg_ledger__bills') }}, {{ ref('stg_ledger__bill_events') }}, {{ ref('stg_ledger__payroll_bills') }}
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
{%- if is_incremental() %}
where (cycles.cycle_code, cycles.plan_code) in (
    {{ touched_by_new_commits(ref('stg_ledger__payment_cycles'), 'cycle_code, plan_code') }}
    union
    select cycle_code, plan_code from {{ ref('stg_ledger__bills') }}
    where bill_id in ({{ bills_touched_by_new_commits() }})
)
{%- endif %}
group by cycles.cycle_code, cycles.plan_code, cycles.period_start, cycles.period_end, cycles.recorded_at
