{#- Whom a bill is paid to: the individual it pays, else its household's primary recipient, else the household's head
    (payroll.py's commit checks the same against the ledger). -#}
{% macro recipient(individual_id, households) -%}
    coalesce({{ individual_id }}, {{ households }}.primary_recipient_id, {{ households }}.head_individual_id)
{%- endmacro %}
