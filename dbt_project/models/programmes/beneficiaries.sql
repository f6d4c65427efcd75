-- Every beneficiary of every plan as its latest approved version says.
{{ config(indexes=[
    {'columns': ['beneficiary_id'], 'unique': True},
    {'columns': ['plan_code', 'status']},
    {'columns': ['individual_id']},
    {'columns': ['household_code']},
], materialized='incremental', unique_key='beneficiary_id', incremental_strategy='delete+insert',
   on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the beneficiaries its new commits gave a version.

with versions as (
    select * from {{ ref('stg_ledger__beneficiary_versions') }}
    {%- if is_incremental() %}
    where beneficiary_id in ({{ touched_by_new_commits(ref('stg_ledger__beneficiary_versions'), 'beneficiary_id') }})
    {%- endif %}
),

-- When and as what each beneficiary was enrolled, from the same pass (version 1): no join of two derived
-- sets, which a planner that misjudges their size could run as a nested loop.
latest as (
    select distinct on (beneficiary_id)
        *,
        max(recorded_at) filter (where version = 1) over by_beneficiary as enrolled_at,
        max(status) filter (where version = 1) over by_beneficiary as enrolled_as
    from versions
    window by_beneficiary as (partition by beneficiary_id)
    order by beneficiary_id, version desc
)

select
    latest.beneficiary_id,
    latest.plan_code,
    latest.individual_id,
    latest.household_code,
    latest.status,
    latest.version,
    latest.attributes,
    latest.enrolled_at,
    latest.enrolled_as,
    latest.recorded_at as updated_at
from latest
where latest.enrolled_at is not null
