{#- What committing an individuals upload would append: one new version per valid row.
    create: a new individual (id assigned here, kept by the commit), its household new or existing.
    update: the current version with the file's columns replaced (household, role and recipient included).
    Vars (set by the workflow, never user text): upload_id, mode, columns (the file's validated header). -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='upload_id',
          indexes=[{'columns': ['upload_id']}],
          on_schema_change='append_new_columns') }}

-- depends_on: {{ ref('individuals') }}
-- depends_on: {{ ref('households') }}
-- depends_on: {{ source('intake', 'row_errors') }}
{%- set upload_id = run_value('upload_id') %}
{%- set mode = run_value('mode') %}
{%- set given = run_value('columns') %}
{%- set core = ['first_name', 'last_name', 'sex', 'national_id', 'location_code', 'location_name', 'region'] %}
{%- if upload_id is not none %}
    {%- set checked = checked_table(upload_id) %}
with valid_rows as (
    select checked.*
    from intake.{{ checked }} as checked
    where {{ without_blocking_errors('checked', upload_id) }}
),

proposed as (
    {%- if mode == 'create' %}
select
    {{ upload_id | int }}::bigint as upload_id,
    valid_rows.row_number,
    'create'::text as action,
    gen_random_uuid() as individual_id,
    1 as version,
    null::integer as based_on_version,
    {%- for column in core %}
    valid_rows.{{ column }},
    {%- endfor %}
    valid_rows.dob__date as dob,
    valid_rows.group_code as household_code,
    valid_rows.role,
    valid_rows.recipient_type,
    valid_rows.attributes,
    null::text as previous_household_code
from valid_rows
    {%- else %}
select
    {{ upload_id | int }}::bigint as upload_id,
    valid_rows.row_number,
    'update'::text as action,
    current_version.individual_id,
    current_version.version + 1 as version,
    current_version.version as based_on_version,
    {%- for column in core %}
    {{ 'valid_rows' if column in given else 'current_version' }}.{{ column }},
    {%- endfor %}
    {{ 'valid_rows.dob__date' if 'dob' in given else 'current_version.dob' }} as dob,
    {%- set household_code = 'valid_rows.group_code' if 'group_code' in given else 'current_version.household_code' %}
    {{ household_code }} as household_code,
    {{ 'valid_rows' if 'individual_role' in given else 'current_version' }}.role,
    {{ 'valid_rows' if 'recipient_info' in given else 'current_version' }}.recipient_type,
    {%- set variables = given | reject('in', core + ['id', 'dob', 'group_code', 'individual_role', 'recipient_info']) | list %}
    (current_version.attributes - array[{% for name in variables %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor %}]::text[])
        || valid_rows.attributes as attributes,
    current_version.household_code as previous_household_code
from valid_rows
join {{ ref('individuals') }} as current_version on current_version.individual_id = valid_rows.individual_id
    {%- endif %}
)

select
    proposed.*,
    (proposed.household_code is not null and not exists (
        select 1 from {{ ref('households') }} as existing where existing.household_code = proposed.household_code
    )) as household_is_new
from proposed
{%- else %}
select
    null::bigint as upload_id, null::bigint as row_number, null::text as action, null::uuid as individual_id,
    null::integer as version, null::integer as based_on_version,
    {%- for column in core %}
    null::text as {{ column }},
    {%- endfor %}
    null::date as dob, null::text as household_code, null::text as role, null::text as recipient_type,
    null::jsonb as attributes, null::text as previous_household_code, null::boolean as household_is_new
where false
{%- endif %}
