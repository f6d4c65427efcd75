-- One row per beneficiary for Superset: plan, status and since when, enrolment and first activation,
-- and the person's (for a GROUP plan: the household head's) region, location, sex and age band.
-- No names, national ids or dates of birth.
{{ config(materialized='incremental', unique_key='beneficiary_id', incremental_strategy='delete+insert',
          on_schema_change='fail', pre_hook="{{ take_in_commits() }}",
          indexes=[{'columns': ['beneficiary_id'], 'unique': True}, {'columns': ['plan_code', 'region']}]) }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the beneficiaries its new commits changed, those of
-- the people, households and plans they changed, and those whose person entered another age band since the
-- model's previous run (a birthday is not a commit).
-- depends_on: {{ ref('stg_ledger__beneficiary_versions') }}, {{ ref('stg_ledger__plan_versions') }}
-- depends_on: {{ ref('stg_ledger__individual_versions') }}, {{ ref('stg_ledger__households') }}
{%- set age_bands = [18, 35, 60, 70, 80] %}
with
{%- if is_incremental() %}
-- Everyone whose date of birth lies in one of the bands' windows since the model's previous run: a range
-- of the dob index per band, sized by the planner (migration 013).
people_in_another_band as (
    select individual_id, household_code
    from {{ ref('individuals') }}
    where
    {%- for years in age_bands %}
        {{ 'or ' if not loop.first }}(dob > publishing.previous_take_in_at('{{ state_model_name() }}')::date - interval '{{ years }} years'
            and dob <= {{ dbt.current_timestamp() }}::date - interval '{{ years }} years')
    {%- endfor %}
),

-- Each way a beneficiary's row can change, as a list of ids found through an index of its own.
touched as (
    {{ touched_by_new_commits(ref('stg_ledger__beneficiary_versions'), 'beneficiary_id') }}
    union
    select beneficiary_id from {{ ref('beneficiaries') }}
    where individual_id in (
        {{ touched_by_new_commits(ref('stg_ledger__individual_versions'), 'individual_id') }}
        union
        select individual_id from people_in_another_band
    )
    union
    select beneficiary_id from {{ ref('beneficiaries') }}
    where household_code in (
        {{ households_touched_by_new_commits() }}
        union
        select household_code from people_in_another_band
    )
    union
    select beneficiary_id from {{ ref('beneficiaries') }}
    where plan_code in ({{ touched_by_new_commits(ref('stg_ledger__plan_versions'), 'plan_code') }})
),
{%- endif %}

history as (
    select
        beneficiary_id,
        max(changed_at) as status_since,
        min(changed_at) filter (where to_status = 'ACTIVE') as first_active_at
    from {{ ref('beneficiary_status_history') }}
    {%- if is_incremental() %}
    where beneficiary_id in (select beneficiary_id from touched)
    {%- endif %}
    group by beneficiary_id
),

people as (
    select
        individual_id,
        sex,
        region,
        location_code,
        location_name,
        date_part('year', age({{ dbt.current_timestamp() }}::date, dob))::integer as age
    from {{ ref('individuals') }}
)

select
    beneficiaries.beneficiary_id,
    beneficiaries.plan_code,
    plans.name as plan_name,
    plans.plan_type,
    beneficiaries.status,
    history.status_since,
    beneficiaries.enrolled_at,
    beneficiaries.enrolled_as,
    history.first_active_at,
    beneficiaries.household_code,
    households.member_count as household_size,
    people.sex,
    case
        when people.age is null then null
        when people.age < {{ age_bands[0] }} then '0-{{ age_bands[0] - 1 }}'
        {%- for lower in age_bands[:-1] %}
        when people.age < {{ age_bands[loop.index] }} then '{{ lower }}-{{ age_bands[loop.index] - 1 }}'
        {%- endfor %}
        else '{{ age_bands[-1] }}+'
    end as age_band,
    people.region,
    people.location_code,
    people.location_name,
    beneficiaries.updated_at
from {{ ref('beneficiaries') }} as beneficiaries
join {{ ref('benefit_plans') }} as plans using (plan_code)
left join history using (beneficiary_id)
left join {{ ref('households') }} as households using (household_code)
left join people
    on people.individual_id = coalesce(beneficiaries.individual_id, households.head_individual_id)
{%- if is_incremental() %}
where beneficiaries.beneficiary_id in (select beneficiary_id from touched)
{%- endif %}
