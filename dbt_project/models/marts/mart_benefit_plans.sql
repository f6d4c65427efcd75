-- One row per benefit plan for Superset: its beneficiaries by status and how much of its
-- max_beneficiaries is taken. Enrolment counts every beneficiary ever enrolled against the maximum
-- (graduated ones keep their place), so capacity_used does too.
with plans as (
    select
        *,
        potential_beneficiaries + active_beneficiaries + suspended_beneficiaries + graduated_beneficiaries
            as beneficiaries
    from {{ ref('benefit_plans') }}
)

select
    plan_code,
    name as plan_name,
    plan_type,
    status,
    institution,
    valid_from,
    valid_to,
    currency,
    payment_frequency,
    max_beneficiaries,
    beneficiaries,
    potential_beneficiaries,
    active_beneficiaries,
    suspended_beneficiaries,
    graduated_beneficiaries,
    max_beneficiaries - beneficiaries as places_left,
    case when max_beneficiaries > 0 then round(beneficiaries::numeric / max_beneficiaries, 4) end as capacity_used,
    updated_at
from plans
