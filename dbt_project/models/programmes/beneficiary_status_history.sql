-- Every status a beneficiary has had: enrolment and each change, with the reason, maker and checker.
{{ config(indexes=[{'columns': ['beneficiary_id']}],
          materialized='incremental', unique_key=['beneficiary_id', 'version'], incremental_strategy='delete+insert',
          on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run adds the changes its new commits made (a version is never
-- changed, so a beneficiary's earlier rows stay as they are).
with versions as (
    select
        versions.*,
        lag(versions.status) over (partition by versions.beneficiary_id order by versions.version) as previous_status
    from {{ ref('stg_ledger__beneficiary_versions') }} as versions
    {%- if is_incremental() %}
    where versions.beneficiary_id in (
        {{ touched_by_new_commits(ref('stg_ledger__beneficiary_versions'), 'beneficiary_id') }})
    {%- endif %}
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
