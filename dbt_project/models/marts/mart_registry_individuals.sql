-- One row per individual for Superset: household, age and the programme variables as columns.
-- Identifying data (national id and variables marked x-personal in the schema) stays out.
{%- set variables = registry_variables() | rejectattr('personal') | list %}

select
    individuals.individual_id,
    individuals.first_name,
    individuals.last_name,
    individuals.sex,
    individuals.dob,
    date_part('year', age(current_date, individuals.dob))::integer as age,
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
