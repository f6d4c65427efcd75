{#- A value the proposing workflow passes for this run (upload_id, request_id, mode, columns, ...).

    Workflows pass them as environment variables BENEFITFLOW_RUN_<NAME> holding JSON, not as
    `--vars`: a changed `--vars` makes dbt re-parse the whole project, a changed environment
    variable only the files that read it (the proposal models). Without the variable, the
    project's `vars:` default (or `--vars`, for an operator running dbt by hand) applies. -#}
{% macro run_value(name) %}
    {%- set given = env_var('BENEFITFLOW_RUN_' ~ (name | upper), '') %}
    {%- if given %}
        {{- return(fromjson(given)) }}
    {%- endif %}
    {{- return(var(name)) }}
{% endmacro %}
