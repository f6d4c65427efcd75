{#- What committing a beneficiaries upload would append: one beneficiary version per beneficiary row, and
    the new people (with new households) the file registers (person_is_new, their id in person_id).
    create: a new beneficiary of the upload's plan (id assigned here): the person or household the row
    names, or a new person (INDIVIDUAL plans), or a new household described by its members' rows, the
    HEAD's row being the beneficiary's (GROUP plans; the other members' rows have no beneficiary_id).
    update: the current version with the file's plan variables replaced.
    Vars (set by the workflow, never user text): upload_id, mode, columns (the validated header), plan_type. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='upload_id',
          indexes=[{'columns': ['upload_id']}],
          on_schema_change='append_new_columns') }}

-- depends_on: {{ ref('stg_intake__uploads') }}
-- depends_on: {{ ref('households') }}
-- depends_on: {{ ref('beneficiaries') }}
-- depends_on: {{ source('intake', 'row_errors') }}
{%- set upload_id = run_value('upload_id') %}
{%- set mode = run_value('mode') %}
{%- set given = run_value('columns') %}
{%- set identity = ['id', 'individual_id', 'household_code', 'status'] %}
{%- set person = ['first_name', 'last_name', 'sex', 'national_id', 'location_code', 'location_name', 'region'] %}
{%- set no_new_person %}
    false as person_is_new,
    null::uuid as person_id,
    {%- for column in person %}
    null::text as {{ column }},
    {%- endfor %}
    null::date as dob, null::text as member_household_code, null::text as role, null::text as recipient_type,
    null::jsonb as person_attributes, false as household_is_new
{%- endset %}
{%- if upload_id is not none %}
    {%- set checked = checked_table(upload_id) %}
with valid_rows as (
    select checked.*
    from intake.{{ checked }} as checked
    where {{ without_blocking_errors('checked', upload_id) }}
),

upload as (
    select upload_id, plan_code from {{ ref('stg_intake__uploads') }} where upload_id = {{ upload_id | int }}
)
    {%- if mode == 'create' and run_value('plan_type') == 'GROUP' %}
select
    upload.upload_id,
    valid_rows.row_number,
    case when valid_rows.beneficiary_row then gen_random_uuid() end as beneficiary_id,
    case when valid_rows.beneficiary_row then 1 end as version,
    upload.plan_code,
    null::uuid as individual_id,
    case when valid_rows.beneficiary_row then valid_rows.household_code end as household_code,
    valid_rows.initial_status as status,
    valid_rows.plan_attributes as attributes,
    'import'::text as reason,
    not valid_rows.household_is_registered as person_is_new,
    case when not valid_rows.household_is_registered then gen_random_uuid() end as person_id,
    {%- for column in person %}
    valid_rows.{{ column }},
    {%- endfor %}
    valid_rows.dob__date as dob,
    case when not valid_rows.household_is_registered then valid_rows.household_code end as member_household_code,
    valid_rows.role,
    valid_rows.recipient_type,
    valid_rows.attributes as person_attributes,
    not valid_rows.household_is_registered as household_is_new
from valid_rows
cross join upload
    {%- elif mode == 'create' %},

people as (
    select
        valid_rows.*,
        valid_rows.person_id is null as person_is_new,
        coalesce(valid_rows.person_id, gen_random_uuid()) as the_person_id
    from valid_rows
)

select
    upload.upload_id,
    people.row_number,
    gen_random_uuid() as beneficiary_id,
    1 as version,
    upload.plan_code,
    people.the_person_id as individual_id,
    null::text as household_code,
    people.initial_status as status,
    people.plan_attributes as attributes,
    'import'::text as reason,
    people.person_is_new,
    case when people.person_is_new then people.the_person_id end as person_id,
    {%- for column in person %}
    people.{{ column }},
    {%- endfor %}
    people.dob__date as dob,
    people.group_code as member_household_code,
    people.role,
    people.recipient_type,
    people.attributes as person_attributes,
    (people.person_is_new and people.group_code is not null and not exists (
        select 1 from {{ ref('households') }} as existing where existing.household_code = people.group_code
    )) as household_is_new
from people
cross join upload
    {%- else %}
    {%- set variables = given | reject('in', identity) | list %}
select
    upload.upload_id,
    valid_rows.row_number,
    current_version.beneficiary_id,
    current_version.version + 1 as version,
    current_version.plan_code,
    current_version.individual_id,
    current_version.household_code,
    current_version.status,
    (current_version.attributes - array[{% for name in variables %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor %}]::text[])
        || valid_rows.plan_attributes as attributes,
    'data update'::text as reason,
    {{ no_new_person }}
from valid_rows
cross join upload
join {{ ref('beneficiaries') }} as current_version on current_version.beneficiary_id = valid_rows.beneficiary_id
    {%- endif %}
{%- else %}
select
    null::bigint as upload_id, null::bigint as row_number, null::uuid as beneficiary_id, null::integer as version,
    null::text as plan_code, null::uuid as individual_id, null::text as household_code, null::text as status,
    null::jsonb as attributes, null::text as reason,
    {{ no_new_person }}
where false
{%- endif %}
