{#- What a bill is due: its amount, but nothing for a cancelled bill (where a merge of duplicate records found the
    person billed twice in a cycle, one bill is cancelled: the other pays them). The marts read it; what the bill
    was for stays in payments.bills.amount. -#}
{% macro amount_due(bills) -%}
    case when {{ bills }}.status = 'CANCELLED' then 0 else {{ bills }}.amount end
{%- endmacro %}
