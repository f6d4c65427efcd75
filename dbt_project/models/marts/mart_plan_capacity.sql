-- Each plan's beneficiaries by region against the plan's maximum, for the "Plan capacity used" chart.
-- Summed over regions it is the plan's capacity used; row-level security leaves a regional manager
-- the region's rows, so they see their region's share of the plan and nothing of other regions.
-- A plan without beneficiaries has one row with no region (every region's managers see no share).
with by_region as (
    select plan_code, region, count(*) as beneficiaries, count(*) filter (where status = 'ACTIVE') as active
    from {{ ref('mart_beneficiaries') }}
    group by plan_code, region
)

select
    plans.plan_code,
    plans.plan_name,
    plans.plan_type,
    plans.status,
    plans.max_beneficiaries,
    by_region.region,
    coalesce(by_region.beneficiaries, 0) as beneficiaries,
    coalesce(by_region.active, 0) as active_beneficiaries
from {{ ref('mart_benefit_plans') }} as plans
left join by_region using (plan_code)
