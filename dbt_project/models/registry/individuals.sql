-- The registry's current state: the latest approved version of every individual.
{{ config(indexes=[
    {'columns': ['individual_id'], 'unique': True},
    {'columns': ['national_id']},
    {'columns': ['household_code']},
    {'columns': ['dob']},
    {'columns': ["(first_name || ' ' || last_name)"]},
], materialized='incremental', unique_key='individual_id', incremental_strategy='delete+insert',
   on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- The last index serves the individual record's search by name (its full_name is this expression).
-- Incremental (macros/incremental_state.sql): a run rebuilds the people its new commits gave a version.

with versions as (
    select * from {{ ref('stg_ledger__individual_versions') }}
    {%- if is_incremental() %}
    where individual_id in ({{ touched_by_new_commits(ref('stg_ledger__individual_versions'), 'individual_id') }})
    {%- endif %}
),

latest as (
    select distinct on (individual_id) *
    from versions
    order by individual_id, version desc
),

first_versions as (
    select individual_id, recorded_at as registered_at, upload_id as registered_by_upload
    from versions
    where version = 1
)

select
    latest.individual_id,
    latest.version,
    latest.first_name,
    latest.last_name,
    latest.dob,
    latest.sex,
    latest.national_id,
    latest.location_code,
    latest.location_name,
    latest.region,
    households.household_id,
    latest.household_code,
    latest.role,
    latest.recipient_type,
    latest.attributes,
    first_versions.registered_at,
    first_versions.registered_by_upload,
    latest.recorded_at as updated_at,
    latest.upload_id as last_upload_id,
    latest.commit_id as last_commit_id
from latest
left join first_versions using (individual_id)
left join {{ ref('stg_ledger__households') }} as households using (household_code)
