{#- What an export of personal data would write, per request: the keys of the rows its filter selected
    when it was asked for (a person, a beneficiary or a bill). The commit writes those rows, with their
    values at the time, and nothing else. Each export DAG has its own model (<dag_id>_proposal) over it. -#}
{% macro export_proposal() %}
{%- set request_id = run_value('request_id') %}
select
    selection.request_id,
    selection.individual_id,
    selection.beneficiary_id,
    selection.bill_id
from {{ source('intake', 'request_selection') }} as selection
where selection.request_id = {{ request_id | int if request_id is not none else 'null' }}
{%- endmacro %}
