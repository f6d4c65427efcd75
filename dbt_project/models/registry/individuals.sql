-- The registry's current state: the latest approved version of every individual.
{{ config(indexes=[
    {'columns': ['individual_id'], 'unique': True},
    {'columns': ['national_id']},
    {'columns': ['household_code']},
    {'columns': ['dob']},
    {'columns': ['last_commit_id']},
    {'columns': ['region', 'dob']},
    {'columns': ["(first_name || ' ' || last_name)"]},
], materialized='incremental', unique_key='individual_id', incremental_strategy='delete+insert',
   on_schema_change='fail', pre_hook="{{ take_in_commits() }}", post_hook="{{ drop_merged_records() }}") }}
-- The last index serves the individual record's search by name (its full_name is this expression); (region, dob)
-- the commonest criteria, a region and an age (compiled to dates of birth): a partner's predicate counts its
-- matches through it (1M people: 394 -> 147 ms for region = North and age >= 60, with other work on the machine).
-- Incremental (macros/incremental_state.sql): a run rebuilds the people its new commits gave a version.

with versions as (
    select * from {{ ref('stg_ledger__individual_versions') }}
    {%- if is_incremental() %}
    where individual_id in ({{ touched_by_new_commits(ref('stg_ledger__individual_versions'), 'individual_id') }})
    {%- endif %}
),

-- When and by which upload each person was registered, from the same pass (version 1 of the person): no
-- join of two derived sets, which a planner that misjudges their size could run as a nested loop.
latest as (
    select distinct on (individual_id)
        *,
        max(recorded_at) filter (where version = 1) over by_person as registered_at,
        max(upload_id) filter (where version = 1) over by_person as registered_by_upload
    from versions
    window by_person as (partition by individual_id)
    order by individual_id, version desc
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
    latest.registered_at,
    latest.registered_by_upload,
    latest.recorded_at as updated_at,
    latest.upload_id as last_upload_id,
    latest.commit_id as last_commit_id
from latest
left join {{ ref('stg_ledger__households') }} as households using (household_code)
-- A record merged into another (a confirmed duplicate) is no longer a person of the registry.
where latest.merged_into is null
