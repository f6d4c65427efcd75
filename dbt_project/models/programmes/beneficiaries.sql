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

latest as (
    select distinct on (beneficiary_id) *
    from versions
    order by beneficiary_id, version desc
),

enrolments as (
    select beneficiary_id, recorded_at as enrolled_at, status as enrolled_as
    from versions
    where version = 1
)

select
    latest.beneficiary_id,
    latest.plan_code,
    latest.individual_id,
    latest.household_code,
    latest.status,
    latest.version,
    latest.attributes,
    enrolments.enrolled_at,
    enrolments.enrolled_as,
    latest.recorded_at as updated_at
from latest
join enrolments using (beneficiary_id)
