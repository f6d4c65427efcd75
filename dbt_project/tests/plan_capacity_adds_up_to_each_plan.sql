-- The regions of a plan in mart_plan_capacity add up to the plan's beneficiaries in mart_benefit_plans:
-- a beneficiary missing from the regional rows would vanish from every manager's capacity chart.
select plans.plan_code, plans.beneficiaries, sum(capacity.beneficiaries) as by_region
from {{ ref('mart_benefit_plans') }} as plans
join {{ ref('mart_plan_capacity') }} as capacity using (plan_code)
group by plans.plan_code, plans.beneficiaries
having sum(capacity.beneficiaries) <> plans.beneficiaries
