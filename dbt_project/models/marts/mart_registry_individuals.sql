-- One row per individual for Superset: household, date of birth and the programme variables as columns.
-- Identifying data (national id and variables marked x-personal in the schema) stays out. Age is computed
-- when read (the Superset dataset's `age`), so no row goes stale as people grow older.
{{ config(materialized='incremental', unique_key='individual_id', incremental_strategy='delete+insert',
          on_schema_change='sync_all_columns', pre_hook="{{ take_in_commits(repeatable_read=false) }}",
          post_hook="{{ drop_merged_records() }}",
          indexes=[{'columns': ['individual_id'], 'unique': True}, {'columns': ['region']}]) }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the people its new commits changed and the members
-- of every household they joined or left (its size). All rows when the registry schema's variables changed.
-- depends_on: {{ ref('stg_ledger__individual_versions') }}, {{ ref('stg_ledger__households') }}
{%- set variables = registry_variables() | rejectattr('personal') | list %}
{%- set only_touched = is_incremental() and variables_are_columns(variables) %}
{%- if only_touched %}

with touched as (  -- noqa: ST03
    {{ touched_by_new_commits(ref('stg_ledger__individual_versions'), 'individual_id') }}
    union
    select individual_id from {{ ref('individuals') }}
    where household_code in ({{ households_touched_by_new_commits() }})
)
{%- endif %}

select
    individuals.individual_id,
    individuals.first_name,
    individuals.last_name,
    individuals.sex,
    individuals.dob,
    individuals.location_code,
    individuals.location_name,
    individuals.region,
    individuals.household_code,
    individuals.role,
    individuals.recipient_type,
    households.member_count as household_size,
    individuals.registered_at,
    individuals.updated_at,
    individuals.version
    {%- for variable in variables %},
    (individuals.attributes ->> '{{ variable.name }}')::{{ variable.sql_type }} as {{ adapter.quote(variable.name) }}
    {%- endfor %}
from {{ ref('individuals') }} as individuals
left join {{ ref('households') }} as households using (household_code)
{%- if only_touched %}
where individuals.individual_id in (select individual_id from touched)
{%- endif %}
