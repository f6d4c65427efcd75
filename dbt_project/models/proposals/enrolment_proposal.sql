{#- Who an enrolment request would enrol: every candidate its criteria selected, with whether it is
    already in the plan, whether it is beyond the plan's max_beneficiaries (the places left go to
    the first candidates by id), and what the plan's entitlement rule would give it per cycle. The plan and target status come from the request's validated document.
    Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}],
          on_schema_change='append_new_columns') }}

{%- set request_id = run_value('request_id') %}

with request as (
    select request_id, document ->> 'plan' as plan_code, document ->> 'target_status' as target_status
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ request_id | int if request_id is not none else 'null' }} and kind = 'enrolment'
),

plan as (
    select distinct on (versions.plan_code) versions.plan_code, versions.max_beneficiaries, versions.document
    from {{ ref('stg_ledger__plan_versions') }} as versions
    join request using (plan_code)
    order by versions.plan_code, versions.version desc
),

-- Whoever a beneficiary of the plan is or was: as enrolled (version 1), or as an enrolment moved to by a merge of
-- duplicates (a later version naming another person), so a person never holds two enrolments of one plan.
enrolled as (
    select versions.individual_id, versions.household_code
    from {{ ref('stg_ledger__beneficiary_versions') }} as versions
    join plan using (plan_code)
    where versions.version = 1
    union
    select moved.individual_id, moved.household_code
    from {{ ref('stg_ledger__beneficiary_versions') }} as moved
    join plan using (plan_code)
    join {{ ref('stg_ledger__beneficiary_versions') }} as first
        on first.beneficiary_id = moved.beneficiary_id and first.version = 1
    where moved.version > 1 and moved.individual_id is distinct from first.individual_id
),

places as (
    select plan.plan_code, plan.max_beneficiaries - (select count(*) from enrolled) as places_left
    from plan
),

candidates as (
    select
        selection.request_id,
        selection.individual_id,
        selection.household_code,
        selection.counted_members,
        selection.top_ups,
        (enrolled_individual.individual_id is not null or enrolled_household.household_code is not null)
            as already_enrolled
    from {{ source('intake', 'request_selection') }} as selection
    left join enrolled as enrolled_individual on enrolled_individual.individual_id = selection.individual_id
    left join enrolled as enrolled_household on enrolled_household.household_code = selection.household_code
    where selection.request_id = {{ request_id | int if request_id is not none else 'null' }}
),

ranked as (
    select
        candidates.*,
        row_number() over (
            partition by candidates.already_enrolled order by candidates.individual_id, candidates.household_code
        ) as place
    from candidates
),

marked as (
    select
        ranked.*,
        not ranked.already_enrolled and coalesce(ranked.place > places.places_left, false) as over_capacity
    from ranked
    cross join places
)

select
    marked.request_id,
    gen_random_uuid() as beneficiary_id,
    request.plan_code,
    marked.individual_id,
    marked.household_code,
    request.target_status as status,
    marked.already_enrolled,
    marked.over_capacity,
    not marked.already_enrolled and not marked.over_capacity as to_enrol,
    {{ entitlement_amount('plan.document', 'marked.counted_members', 'marked.top_ups') }} as projected_amount
from marked
join request using (request_id)
cross join plan
