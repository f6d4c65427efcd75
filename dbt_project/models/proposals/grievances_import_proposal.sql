{#- What committing a grievances upload would record: one ticket per valid row, linked to the
    person (a GROUP plan's beneficiary: the head of its household), due on the day received plus
    the category's resolution time. Vars (set by the workflow): upload_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='upload_id',
          indexes=[{'columns': ['upload_id']}]) }}

-- depends_on: {{ ref('beneficiaries') }}
-- depends_on: {{ ref('households') }}
-- depends_on: {{ source('intake', 'row_errors') }}
{%- set upload_id = run_value('upload_id') %}
{%- if upload_id is not none %}
    {%- set checked = checked_table(upload_id) %}
select
    {{ upload_id | int }}::bigint as upload_id,
    checked.row_number,
    gen_random_uuid() as grievance_id,
    coalesce(checked.person_id, beneficiaries.individual_id, households.head_individual_id) as individual_id,
    checked.reporting_beneficiary_id as beneficiary_id,
    checked.title,
    checked.description,
    checked.category_code as category,
    checked.channel_code as channel,
    checked.priority_code as priority,
    checked.incident_date__date as incident_date,
    checked.received_date as received_on,
    checked.received_date + checked.resolution_days as due_on
from intake.{{ checked }} as checked
left join {{ ref('beneficiaries') }} as beneficiaries
    on beneficiaries.beneficiary_id = checked.reporting_beneficiary_id
left join {{ ref('households') }} as households
    on households.household_code = beneficiaries.household_code
where {{ without_blocking_errors('checked', upload_id) }}
{%- else %}
select null::bigint as upload_id, null::bigint as row_number, null::uuid as grievance_id, null::uuid as individual_id,
       null::uuid as beneficiary_id, null::text as title, null::text as description, null::text as category,
       null::text as channel, null::text as priority, null::date as incident_date, null::date as received_on,
       null::date as due_on
where false
{%- endif %}
