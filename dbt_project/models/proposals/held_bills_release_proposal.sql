{#- The held bills a release request would make DUE: every bill its selection chose, with its
    amount. Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}],
          on_schema_change='append_new_columns') }}

{%- set request_id = run_value('request_id') %}

select
    selection.request_id,
    bills.bill_id,
    bills.bill_code,
    bills.cycle_code,
    bills.plan_code,
    bills.beneficiary_id,
    bills.amount,
    bills.currency
from {{ source('intake', 'request_selection') }} as selection
join {{ ref('stg_ledger__bills') }} as bills using (bill_id)
where selection.request_id = {{ request_id | int if request_id is not none else 'null' }}
  and bills.held
