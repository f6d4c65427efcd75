-- Every plan's payment cycles with their bills' numbers and amounts (due, paid, failed, held, cancelled).
{{ config(materialized='incremental', unique_key=['cycle_code', 'plan_code'], incremental_strategy='delete+insert',
          on_schema_change='fail', pre_hook=["{{ take_in_commits() }}", "{{ require_record_of_taken_in_commits() }}"]) }}
-- Incremental (macros/incremental_state.sql): a run moves the bills its new commits touched from what they
-- were (as the commits this model took in before showed them) to what they are now (payments.bills), so a
-- correction of ten bills costs ten bills, not the cycle's million. A full rebuild counts every bill.
-- depends_on: {{ ref('stg_ledger__bills') }}, {{ ref('stg_ledger__bill_events') }}, {{ ref('stg_ledger__payroll_bills') }}
-- depends_on: {{ ref('stg_ledger__duplicate_reviews') }}
{%- set counted = ['bills', 'total_amount', 'bills_held', 'bills_due', 'bills_paid', 'amount_paid', 'bills_failed',
                   'amount_failed', 'bills_cancelled', 'amount_cancelled'] %}
{%- set incremental = is_incremental() %}

with
{%- if incremental %}
taken_in_before as (
    select commit_id from publishing.taken_in_commits
    where model = '{{ state_model_name() }}' and take_in <> current_setting('benefitflow.take_in')::bigint
),

touched as (
    {{ bills_touched_by_new_commits() }}
),

-- The bills cancelled as the commits this model took in before showed them (few bills ever are).
cancelled_before as (
    select events.bill_id
    from {{ ref('stg_ledger__bill_events') }} as events
    where events.status in ('CANCELLED', 'REINSTATED')
        and events.commit_id in (select commit_id from taken_in_before)
    group by events.bill_id
    having count(*) filter (where events.status = 'CANCELLED') > count(*) filter (where events.status = 'REINSTATED')
),

-- Each touched bill as this model counted it before: none for a bill created by a new commit.
before as (
    select
        bills.bill_id,
        bills.cycle_code,
        bills.plan_code,
        bills.currency,
        bills.amount,
        case
            when was_cancelled.bill_id is not null then 'CANCELLED'
            else coalesce(latest_event.status, case when bills.held then 'HELD' else 'DUE' end)
        end as status,
        case when latest_event.status = 'PAID' then latest_event.amount_paid end as amount_paid
    from {{ ref('stg_ledger__bills') }} as bills
    -- as payments.bills says: the latest event other than a cancellation or a reinstatement ...
    left join lateral (
        select events.status, events.amount_paid
        from {{ ref('stg_ledger__bill_events') }} as events
        where events.bill_id = bills.bill_id and events.commit_id in (select commit_id from taken_in_before)
            and events.status in ('DUE', 'PAID', 'FAILED')
        order by events.commit_id desc
        limit 1
    ) as latest_event on true
    -- ... and cancelled while cancelled more often than reinstated
    left join cancelled_before as was_cancelled on was_cancelled.bill_id = bills.bill_id
    where bills.bill_id in (select bill_id from touched)
        and bills.commit_id in (select commit_id from taken_in_before)
),

bill_changes as (
    select 1 as sign, cycle_code, plan_code, currency, amount, status, amount_paid
    from {{ ref('bills') }}
    where bill_id in (select bill_id from touched)
    union all
    select -1 as sign, cycle_code, plan_code, currency, amount, status, amount_paid
    from before
),

{%- else %}
bill_changes as (
    select 1 as sign, cycle_code, plan_code, currency, amount, status, amount_paid
    from {{ ref('bills') }}
),
{%- endif %}

counts as (
    select
        cycle_code,
        plan_code,
        min(currency) as currency,
        sum(sign) as bills,
        sum(sign * amount) as total_amount,
        sum(sign) filter (where status = 'HELD') as bills_held,
        sum(sign) filter (where status = 'DUE') as bills_due,
        sum(sign) filter (where status = 'PAID') as bills_paid,
        sum(sign * amount_paid) as amount_paid,
        sum(sign) filter (where status = 'FAILED') as bills_failed,
        sum(sign * amount) filter (where status = 'FAILED') as amount_failed,
        sum(sign) filter (where status = 'CANCELLED') as bills_cancelled,
        sum(sign * amount) filter (where status = 'CANCELLED') as amount_cancelled
    from bill_changes
    group by cycle_code, plan_code
)

select
    cycles.cycle_code,
    cycles.plan_code,
    cycles.period_start,
    cycles.period_end,
    {%- if incremental %}
    coalesce(previous.currency, counts.currency) as currency,
    {%- else %}
    counts.currency,
    {%- endif %}
    {%- for column in counted %}
    {{ 'coalesce(previous.' ~ column ~ ', 0) + ' if incremental }}coalesce(counts.{{ column }}, 0)::{{
        'numeric' if 'amount' in column else 'bigint' }} as {{ column }},
    {%- endfor %}
    cycles.recorded_at as opened_at
from {{ ref('stg_ledger__payment_cycles') }} as cycles
left join counts using (cycle_code, plan_code)
{%- if incremental %}
left join {{ this }} as previous using (cycle_code, plan_code)
where counts.cycle_code is not null
    or (cycles.cycle_code, cycles.plan_code) in (
        {{ touched_by_new_commits(ref('stg_ledger__payment_cycles'), 'cycle_code, plan_code') }})
{%- endif %}
