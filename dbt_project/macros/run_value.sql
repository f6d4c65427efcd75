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

{#- The checked table of the upload a file workflow proposes from (run value `checked_table`, handed over
    by the workflow: `benefitflow.workflows.inputs.checked_table`), refused unless it is that upload's,
    and quoted. -#}
{% macro checked_table(upload_id) %}
    {%- set name = run_value('checked_table') %}
    {%- set suffix = '_' ~ (upload_id | int) ~ '_checked' %}
    {%- if name is none or not (name.startswith('stage_') and name.endswith(suffix)
                                and name.replace('_', '').isalnum() and name == name.lower()) %}
        {{- exceptions.raise_compiler_error("checked_table must be upload " ~ upload_id
            ~ "'s checked table (stage_<kind>_" ~ upload_id ~ "_checked), not " ~ name) }}
    {%- endif %}
    {{- return('"' ~ name ~ '"') }}
{% endmacro %}
