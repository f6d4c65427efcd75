{#- The bills a payment cycle request would create: one per selected (ACTIVE) beneficiary, its
    amount from the plan version the request validated, under the plan's entitlement rule; those
    already billed in this cycle are marked and not billed again; bills above the rule's
    transaction_limit are held. Plan, cycle and period come from the request's validated document.
    Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}],
          on_schema_change='append_new_columns') }}

{%- set request_id = run_value('request_id') %}

with request as (
    select
        request_id,
        document ->> 'plan' as plan_code,
        (document ->> 'plan_version')::integer as plan_version,
        document ->> 'cycle' as cycle_code,
        (document ->> 'period_start')::date as period_start,
        (document ->> 'period_end')::date as period_end
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ request_id | int if request_id is not none else 'null' }} and kind = 'payment_cycle'
),

plan as (
    select versions.plan_code, versions.version, versions.currency, versions.document
    from {{ ref('stg_ledger__plan_versions') }} as versions
    join request on request.plan_code = versions.plan_code and request.plan_version = versions.version
),

billed as (
    select bills.beneficiary_id
    from {{ ref('stg_ledger__bills') }} as bills
    join request using (cycle_code, plan_code)
),

selected as (
    select selection.*
    from {{ source('intake', 'request_selection') }} as selection
    where selection.request_id = {{ request_id | int if request_id is not none else 'null' }}
),

priced as (
    select
        selected.request_id,
        selected.beneficiary_id,
        selected.individual_id,
        selected.household_code,
        selected.counted_members,
        selected.top_ups,
        {{ entitlement_amount('plan.document', 'selected.counted_members', 'selected.top_ups') }} as amount,
        (plan.document #>> '{entitlement,transaction_limit}')::numeric as transaction_limit
    from selected
    cross join plan
)

select
    priced.request_id,
    gen_random_uuid() as bill_id,
    request.cycle_code,
    request.plan_code,
    request.plan_version,
    request.period_start,
    request.period_end,
    priced.beneficiary_id,
    priced.individual_id,
    priced.household_code,
    priced.counted_members,
    priced.top_ups,
    priced.amount,
    plan.currency,
    coalesce(priced.amount > priced.transaction_limit, false) as held,
    billed.beneficiary_id is not null as already_billed
from priced
join request using (request_id)
cross join plan
left join billed using (beneficiary_id)
