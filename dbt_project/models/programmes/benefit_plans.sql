-- Every benefit plan as its latest approved version says, with its beneficiaries counted by status.
{{ config(indexes=[{'columns': ['plan_code'], 'unique': True}],
          materialized='incremental', unique_key='plan_code', incremental_strategy='delete+insert',
          on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run counts again the plans its new commits changed or enrolled in.
-- depends_on: {{ ref('stg_ledger__beneficiary_versions') }}

with latest as (
    select distinct on (plan_code) *
    from {{ ref('stg_ledger__plan_versions') }}
    {%- if is_incremental() %}
    where plan_code in (
        {{ touched_by_new_commits(ref('stg_ledger__plan_versions'), 'plan_code') }}
        union
        {{ touched_by_new_commits(ref('stg_ledger__beneficiary_versions'), 'plan_code') }}
    )
    {%- endif %}
    order by plan_code, version desc
),

counts as (
    select
        plan_code,
        count(*) filter (where status = 'POTENTIAL') as potential,
        count(*) filter (where status = 'ACTIVE') as active,
        count(*) filter (where status = 'SUSPENDED') as suspended,
        count(*) filter (where status = 'GRADUATED') as graduated
    from {{ ref('beneficiaries') }}
    where plan_code in (select plan_code from latest)
    group by plan_code
)

select
    latest.plan_code,
    latest.version,
    latest.name,
    latest.plan_type,
    latest.document ->> 'description' as description,
    latest.document ->> 'institution' as institution,
    latest.valid_from,
    latest.valid_to,
    latest.max_beneficiaries,
    latest.currency,
    latest.document ->> 'payment_frequency' as payment_frequency,
    latest.status,
    latest.document,
    latest.recorded_at as updated_at,
    coalesce(counts.potential, 0) as potential_beneficiaries,
    coalesce(counts.active, 0) as active_beneficiaries,
    coalesce(counts.suspended, 0) as suspended_beneficiaries,
    coalesce(counts.graduated, 0) as graduated_beneficiaries
from latest
left join counts using (plan_code)
