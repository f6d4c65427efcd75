{#- The bills a payment cycle request would create: one per selected (ACTIVE) beneficiary, its
    amount from the plan version the request validated, under the plan's entitlement rule; those
    already billed in this cycle, or whose payee another bill of it pays (a merged duplicate's, or
    another household's of the same primary recipient), are marked
    and not billed again; bills above the rule's transaction_limit are held, and so are bills of
    people in a duplicate pair not reviewed yet when the plan says so (hold_bills_of_open_duplicates):
    the person billed, or a GROUP plan's primary recipient.
    Plan, cycle and period come from the request's validated document.
    Vars (set by the workflow): request_id. -#}
{#- The sets compared with each bill are hashed only while they fit in hash memory (work_mem x hash_mem_multiplier);
    a re-run of a 1,000,000-bill cycle needs about 50 MB, more than PostgreSQL's default gives. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}],
          on_schema_change='append_new_columns', pre_hook="set local work_mem = '64MB'") }}

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

-- Enrolments billed in this cycle already, from the ledger.
billed as (
    select bills.beneficiary_id
    from {{ ref('stg_ledger__bills') }} as bills
    join request using (cycle_code, plan_code)
),

-- People a bill of this cycle pays or paid already, whichever enrolment it was billed for: once two records are
-- merged as duplicates, the retired record's bill pays the survivor, who is not billed again in the cycle (the commit
-- checks it again on the ledger, as the state may lag a merge not published yet). A household's bill pays its
-- primary recipient (whom its payroll paid, or the household's now): a person is not paid for two households.
paid_already as (
    select {{ recipient('coalesce(bills.individual_id, bills.paid_to_individual_id)', 'households') }} as individual_id
    from {{ ref('bills') }} as bills
    join request using (cycle_code, plan_code)
    left join {{ ref('households') }} as households
        on households.household_code = bills.household_code and bills.individual_id is null
    where bills.status <> 'CANCELLED'
),

-- People in a duplicate pair nobody reviewed yet: the same person may be billed twice.
in_open_pairs as (
    select pairs.individual_a as individual_id from {{ ref('duplicate_candidates') }} as pairs
    where pairs.status = 'OPEN'
    union all
    select pairs.individual_b from {{ ref('duplicate_candidates') }} as pairs
    where pairs.status = 'OPEN'
),

selected as (
    select selection.*
    from {{ source('intake', 'request_selection') }} as selection
    where selection.request_id = {{ request_id | int if request_id is not none else 'null' }}
),

-- Who is paid: the person, or a GROUP plan's household's primary recipient (else its head). The sets it is compared with are
-- looked up by hash (IN over each), not joined: a selection of any size costs one pass, whatever the planner
-- guesses of its size.
priced as materialized (
    select
        selected.request_id,
        selected.beneficiary_id,
        selected.individual_id,
        selected.household_code,
        selected.counted_members,
        selected.top_ups,
        {{ recipient('selected.individual_id', 'households') }} as payee_id,
        {{ entitlement_amount('plan.document', 'selected.counted_members', 'selected.top_ups') }} as amount,
        (plan.document #>> '{entitlement,transaction_limit}')::numeric as transaction_limit,
        coalesce((plan.document ->> 'hold_bills_of_open_duplicates')::boolean, false) as hold_open_duplicates
    from selected
    cross join plan
    left join {{ ref('households') }} as households on households.household_code = selected.household_code
),

flagged as (
    select
        priced.*,
        coalesce(priced.amount > priced.transaction_limit, false) as over_transaction_limit,
        priced.beneficiary_id in (select billed.beneficiary_id from billed)
        or coalesce(priced.payee_id in (select paid_already.individual_id from paid_already), false)
        as already_billed,
        coalesce(priced.payee_id in (select in_open_pairs.individual_id from in_open_pairs), false)
        as payee_in_open_duplicate_pair
    from priced
)

select
    flagged.request_id,
    gen_random_uuid() as bill_id,
    request.cycle_code,
    request.plan_code,
    request.plan_version,
    request.period_start,
    request.period_end,
    flagged.beneficiary_id,
    flagged.individual_id,
    flagged.household_code,
    flagged.counted_members,
    flagged.top_ups,
    flagged.amount,
    plan.currency,
    flagged.over_transaction_limit or (flagged.hold_open_duplicates and flagged.payee_in_open_duplicate_pair) as held,
    flagged.over_transaction_limit,
    flagged.already_billed,
    flagged.payee_in_open_duplicate_pair
from flagged
join request using (request_id)
cross join plan
