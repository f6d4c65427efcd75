{#- The bills a payroll request would take: every bill its selection chose, with whom it pays (the
    person, or a household's primary recipient, else its head) and the payroll it moves from (an unpaid
    bill of an earlier payroll), left out (to_pay false) when a payroll waiting for approval already
    holds it — a bill is in at most one open payroll — or when another bill of its cycle paid its
    recipient already (paid_already). The commit pays exactly these recipients.
    Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}],
          on_schema_change='append_new_columns') }}

{%- set request_id = run_value('request_id') %}
{%- set this_request = request_id | int if request_id is not none else 'null' %}

with request as (
    select request_id, document ->> 'payroll' as payroll_name
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ this_request }} and kind = 'payroll'
),

selected as (
    select request_id, bill_id
    from {{ source('intake', 'request_selection') }}
    where request_id = {{ this_request }}
),

latest_payroll as (
    select distinct on (payroll_bills.bill_id) payroll_bills.bill_id, payroll_bills.payroll_id, payrolls.payroll_name
    from {{ ref('stg_ledger__payroll_bills') }} as payroll_bills
    join {{ ref('stg_ledger__payrolls') }} as payrolls using (payroll_id)
    where payroll_bills.bill_id in (select bill_id from selected)
    order by payroll_bills.bill_id, payroll_bills.payroll_id desc
),

pending as (
    {%- if is_incremental() %}
    select distinct earlier.bill_id
    from {{ this }} as earlier
    join {{ ref('stg_intake__requests') }} as requests using (request_id)
    where requests.status = 'WAITING_FOR_APPROVAL' and earlier.to_pay and earlier.request_id <> {{ this_request }}
    {%- else %}
    select null::uuid as bill_id where false
    {%- endif %}
),

proposed as (
    select
        request.request_id,
        request.payroll_name,
        bills.bill_id,
        bills.bill_code,
        bills.cycle_code,
        bills.plan_code,
        bills.amount,
        bills.currency,
        {{ recipient('current_bills.individual_id', 'households') }} as recipient_id,
        latest_payroll.payroll_name as moved_from,
        latest_payroll.payroll_id as moved_from_id,
        pending.bill_id is null as not_pending
    from selected
    join request using (request_id)
    join {{ ref('stg_ledger__bills') }} as bills using (bill_id)
    left join {{ ref('bills') }} as current_bills using (bill_id)
    left join {{ ref('households') }} as households on households.household_code = bills.household_code
    left join latest_payroll using (bill_id)
    left join pending using (bill_id)
),

{# Whom the other bills of these cycles paid or have out for payment (their latest payroll line's recipient, or
    that person's survivor, until it fails): a person is paid once per cycle and plan, whatever household or
    record a bill is for (a person who moved to another household, or a household's recipient merged as a
    duplicate into another household's). A selected bill is paid to nobody (due, or failed in its payroll). #}
cycles as (
    select distinct cycle_code, plan_code from proposed
),

paid_in_the_cycle as (
    select distinct others.cycle_code, others.plan_code, others.paid_to_individual_id
    from {{ ref('bills') }} as others
    inner join cycles on others.cycle_code = cycles.cycle_code and others.plan_code = cycles.plan_code
    -- Paid to someone only when in a payroll: the (payroll_id, status) index finds those, none before the cycle's
    -- first payroll.
    where others.payroll_id is not null and others.paid_to_individual_id is not null
)

select
    proposed.request_id,
    proposed.payroll_name,
    proposed.bill_id,
    proposed.bill_code,
    proposed.cycle_code,
    proposed.plan_code,
    proposed.amount,
    proposed.currency,
    proposed.recipient_id,
    proposed.moved_from,
    proposed.moved_from_id,
    paid_in_the_cycle.paid_to_individual_id is not null as paid_already,
    proposed.not_pending and paid_in_the_cycle.paid_to_individual_id is null as to_pay
from proposed
left join paid_in_the_cycle
    on
        paid_in_the_cycle.cycle_code = proposed.cycle_code
        and paid_in_the_cycle.plan_code = proposed.plan_code
        and paid_in_the_cycle.paid_to_individual_id = proposed.recipient_id
