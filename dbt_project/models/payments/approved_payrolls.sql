-- Every approved payroll (the ledger) with its bills and what the provider reported for them in this
-- payroll. Rebuilt by the payroll and reconciliation commits, which alone change it.
{{ config(materialized='incremental', unique_key='payroll_id', incremental_strategy='delete+insert',
          on_schema_change='sync_all_columns', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the payrolls its new commits approved, filled or answered.
{%- set only_touched = 'payroll_id in (select payroll_id from touched)' %}

{% if is_incremental() -%}
with touched as (
    {{ touched_by_new_commits(ref('stg_ledger__payrolls'), 'payroll_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__payroll_events'), 'payroll_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__payroll_bills'), 'payroll_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__bill_events'), 'payroll_id') }}
),

approved as ({%- else %}
with approved as ({%- endif %}
    select
        payrolls.payroll_id,
        payrolls.payroll_name,
        payrolls.cycle_code,
        payrolls.plan_code,
        payrolls.payment_point,
        payrolls.request_id,
        coalesce(latest_event.status, 'APPROVED_FOR_PAYMENT') as status,
        payrolls.recorded_at as approved_at
    from {{ ref('stg_ledger__payrolls') }} as payrolls
    left join lateral (
        select events.status
        from {{ ref('stg_ledger__payroll_events') }} as events
        where events.payroll_id = payrolls.payroll_id
        order by events.commit_id desc
        limit 1
    ) as latest_event on true
    {% if is_incremental() %}where payrolls.{{ only_touched }}{% endif %}
),

contents as (
    select payroll_id, count(*) as bills, sum(amount) as total_amount
    from {{ ref('stg_ledger__payroll_bills') }}
    {% if is_incremental() %}where {{ only_touched }}{% endif %}
    group by payroll_id
),

-- A bill is answered once per payroll (the reconciliation refuses one answered already).
outcomes as (
    select
        events.payroll_id,
        count(*) filter (where events.status = 'PAID') as bills_paid,
        coalesce(sum(events.amount_paid) filter (where events.status = 'PAID'), 0) as amount_paid,
        count(*) filter (where events.status = 'FAILED') as bills_failed,
        coalesce(sum(payroll_bills.amount) filter (where events.status = 'FAILED'), 0) as amount_failed
    from {{ ref('stg_ledger__bill_events') }} as events
    join {{ ref('stg_ledger__payroll_bills') }} as payroll_bills using (payroll_id, bill_id)
    where events.status in ('PAID', 'FAILED') {% if is_incremental() %}and events.{{ only_touched }}{% endif %}
    group by events.payroll_id
)

select
    approved.*,
    coalesce(contents.bills, 0) as bills,
    coalesce(contents.total_amount, 0) as total_amount,
    coalesce(outcomes.bills_paid, 0) as bills_paid,
    coalesce(outcomes.amount_paid, 0) as amount_paid,
    coalesce(outcomes.bills_failed, 0) as bills_failed,
    coalesce(outcomes.amount_failed, 0) as amount_failed
from approved
left join contents using (payroll_id)
left join outcomes using (payroll_id)
