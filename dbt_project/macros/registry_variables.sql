{#- The programme variables of the registry schema in force: [{name, sql_type, personal}].
    Read from ledger.registry_schemas (recorded by the import); [] before the first import. -#}
{% macro registry_variables() %}
    {%- if execute %}
        {%- set result = run_query(
            "select variables::text from ledger.registry_schemas order by schema_id desc limit 1") %}
        {%- if result.rows | length > 0 %}
            {{- return(fromjson(result.rows[0][0])) }}
        {%- endif %}
    {%- endif %}
    {{- return([]) }}
{% endmacro %}
