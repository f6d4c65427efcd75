{#- What committing a beneficiaries upload would append: one beneficiary version per valid row.
    create: a new beneficiary of the upload's plan (id assigned here), the person or household the row names.
    update: the current version with the file's plan variables replaced.
    Vars (set by the workflow, never user text): upload_id, mode, columns (the validated header), plan_type. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='upload_id') }}

{%- set upload_id = var('upload_id') %}
{%- set mode = var('mode') %}
{%- set given = var('columns') %}
{%- set identity = ['id', 'individual_id', 'household_code', 'status'] %}
{%- if upload_id is not none %}
    {%- set checked = 'stage_beneficiaries_' ~ (upload_id | int) ~ '_checked' %}
with valid_rows as (
    select checked.*
    from intake.{{ checked }} as checked
    where {{ without_blocking_errors('checked', upload_id) }}
),

upload as (
    select upload_id, plan_code from {{ ref('stg_intake__uploads') }} where upload_id = {{ upload_id | int }}
)
    {%- if mode == 'create' %}
select
    upload.upload_id,
    valid_rows.row_number,
    gen_random_uuid() as beneficiary_id,
    1 as version,
    upload.plan_code,
    {%- if var('plan_type') == 'GROUP' %}
    null::uuid as individual_id,
    valid_rows.household_code,
    {%- else %}
    valid_rows.person_id as individual_id,
    null::text as household_code,
    {%- endif %}
    valid_rows.initial_status as status,
    valid_rows.attributes,
    'import'::text as reason
from valid_rows
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
        || valid_rows.attributes as attributes,
    'data update'::text as reason
from valid_rows
cross join upload
join {{ ref('beneficiaries') }} as current_version on current_version.beneficiary_id = valid_rows.beneficiary_id
    {%- endif %}
{%- else %}
select
    null::bigint as upload_id, null::bigint as row_number, null::uuid as beneficiary_id, null::integer as version,
    null::text as plan_code, null::uuid as individual_id, null::text as household_code, null::text as status,
    null::jsonb as attributes, null::text as reason
where false
{%- endif %}
