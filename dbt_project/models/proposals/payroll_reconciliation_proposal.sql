{#- What reconciling a provider's file would append: per valid row, the bill it names becomes PAID
    (with the amount paid, the amount due when the file does not say, and the receipt) or FAILED,
    with the file's other columns kept.
    Vars (set by the workflow, never user text): upload_id, payroll_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='upload_id',
          indexes=[{'columns': ['upload_id']}],
          on_schema_change='append_new_columns') }}

-- depends_on: {{ ref('stg_ledger__bills') }}
-- depends_on: {{ source('intake', 'row_errors') }}
{%- set upload_id = run_value('upload_id') %}
{%- if upload_id is not none %}
    {%- set checked = checked_table(upload_id) %}
select
    {{ upload_id | int }}::bigint as upload_id,
    checked.row_number,
    checked.bill_id,
    {{ run_value('payroll_id') | int }}::bigint as payroll_id,
    case when checked.paid_answer = 'yes' then 'PAID' else 'FAILED' end as status,
    case when checked.paid_answer = 'yes' then coalesce(checked.amount_paid, checked.amount_due) end as amount_paid,
    checked.amount_due,
    bills.currency,
    checked.receipt,
    checked.paid_on,
    checked.provider_row
from intake.{{ checked }} as checked
join {{ ref('stg_ledger__bills') }} as bills using (bill_id)
where {{ without_blocking_errors('checked', upload_id) }}
{%- else %}
select
    null::bigint as upload_id, null::bigint as row_number, null::uuid as bill_id, null::bigint as payroll_id,
    null::text as status, null::numeric as amount_paid, null::numeric as amount_due, null::text as currency,
    null::text as receipt, null::date as paid_on, null::jsonb as provider_row
where false
{%- endif %}
