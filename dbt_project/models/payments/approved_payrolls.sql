-- Every approved payroll (the ledger) with its bills and what the provider reported for them in this
-- payroll. Changed by the payroll and reconciliation commits alone.
{{ config(materialized='incremental', unique_key='payroll_id', incremental_strategy='delete+insert',
          on_schema_change='fail', pre_hook=["{{ take_in_commits() }}", "{{ require_record_of_taken_in_commits() }}"]) }}
-- Incremental (macros/incremental_state.sql): a payroll's bills and answers only grow (its bills are
-- taken once, each is answered once in it), so a run adds the rows of its new commits to the totals
-- the table holds; the status and the payroll's own columns are read again for the payrolls touched.
{%- set incremental = is_incremental() %}
{%- set new_rows = 'commit_id = any(' ~ new_commits() ~ ')' %}

with
{%- if incremental %}
touched as (
    {{ touched_by_new_commits(ref('stg_ledger__payrolls'), 'payroll_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__payroll_events'), 'payroll_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__payroll_bills'), 'payroll_id') }}
    union
    {{ touched_by_new_commits(ref('stg_ledger__bill_events'), 'payroll_id') }}
),
{%- endif %}

approved as (
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
    {%- if incremental %}
    where payrolls.payroll_id in (select payroll_id from touched)
    {%- endif %}
),

contents as (
    select payroll_id, count(*) as bills, sum(amount) as total_amount
    from {{ ref('stg_ledger__payroll_bills') }}
    {%- if incremental %}
    where {{ new_rows }}
    {%- endif %}
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
    where events.status in ('PAID', 'FAILED')
    {%- if incremental %}
        and events.{{ new_rows }}
    {%- endif %}
    group by events.payroll_id
)

select
    approved.*,
    {%- for column in ['bills', 'total_amount', 'bills_paid', 'amount_paid', 'bills_failed', 'amount_failed'] %}
    {%- set source = 'contents' if column in ['bills', 'total_amount'] else 'outcomes' %}
    {%- if incremental %}
    coalesce(previous.{{ column }}, 0) + coalesce({{ source }}.{{ column }}, 0) as {{ column }}{{ ',' if not loop.last }}
    {%- else %}
    coalesce({{ source }}.{{ column }}, 0) as {{ column }}{{ ',' if not loop.last }}
    {%- endif %}
    {%- endfor %}
from approved
left join contents using (payroll_id)
left join outcomes using (payroll_id)
{%- if incremental %}
left join {{ this }} as previous using (payroll_id)  -- noqa: AL05
{%- endif %}
