{#- What a duplicate comparison reads of a person (the database's matching.person type, migration 026), from a
    relation with the registry's columns (registry.individuals, a proposal's copy of them). -#}
{% macro matching_person(alias) -%}
    row({{ alias }}.first_name, {{ alias }}.last_name, {{ alias }}.dob, {{ alias }}.sex, {{ alias }}.location_code,
        {{ alias }}.region, {{ alias }}.household_code, {{ alias }}.attributes ->> 'phone',
        {{ alias }}.national_id)::matching.person
{%- endmacro %}
