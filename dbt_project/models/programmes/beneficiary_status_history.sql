-- Every status a beneficiary has had: enrolment and each change, with the reason, maker and checker.
{{ config(indexes=[{'columns': ['beneficiary_id']}]) }}
with versions as (
    select
        versions.*,
        lag(versions.status) over (partition by versions.beneficiary_id order by versions.version) as previous_status
    from {{ ref('stg_ledger__beneficiary_versions') }} as versions
)

select
    versions.beneficiary_id,
    versions.plan_code,
    versions.individual_id,
    versions.household_code,
    versions.version,
    versions.previous_status as from_status,
    versions.status as to_status,
    versions.reason,
    decisions.maker,
    decisions.checker,
    commits.operation,
    versions.recorded_at as changed_at
from versions
join {{ ref('stg_ledger__commits') }} as commits using (commit_id)
join {{ ref('stg_ledger__decisions') }} as decisions using (decision_id)
where versions.previous_status is distinct from versions.status
