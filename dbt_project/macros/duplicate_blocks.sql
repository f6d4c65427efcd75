{#- The duplicate search's blocks, in the order matching.block_names() (migration 026) gives them: one column of
    registry.duplicate_keys each. The rules' schema (registry/duplicate_rules.schema.json) names the same blocks;
    tests/integration/test_duplicates.py checks the three agree. -#}
{% macro duplicate_blocks() -%}
    {{ return(['dob_last_name', 'dob_first_name', 'names_day_month_any', 'names_year_month', 'names_year_day',
               'names_month_day', 'phone']) }}
{%- endmacro %}
