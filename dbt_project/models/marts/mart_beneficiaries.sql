-- One row per beneficiary for Superset: plan, status and since when, enrolment and first activation,
-- and the person's (for a GROUP plan: the household head's) region, location, sex and age band.
-- No names, national ids or dates of birth.
with history as (
    select
        beneficiary_id,
        max(changed_at) as status_since,
        min(changed_at) filter (where to_status = 'ACTIVE') as first_active_at
    from {{ ref('beneficiary_status_history') }}
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
        when people.age < 18 then '0-17'
        when people.age < 35 then '18-34'
        when people.age < 60 then '35-59'
        when people.age < 70 then '60-69'
        when people.age < 80 then '70-79'
        else '80+'
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
