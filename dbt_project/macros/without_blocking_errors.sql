{#- True for a staged row of the upload that no critical validation error blocks. -#}
{% macro without_blocking_errors(row_alias, upload_id) %}
not exists (
    select 1 from {{ source('intake', 'row_errors') }} as errors
    where errors.upload_id = {{ upload_id | int }}
      and errors.row_number = {{ row_alias }}.row_number
      and errors.severity = 'critical'
)
{% endmacro %}
