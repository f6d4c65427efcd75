{#- The status changes a request would make: every beneficiary it selected, with whether the
    transition table allows the change, and why not. The new status comes from the request's
    validated document. Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}]) }}

{{ status_change_proposal('beneficiaries', 'beneficiary_id', 'beneficiary_status_transitions',
                          carried=['plan_code', 'individual_id', 'household_code', 'attributes']) }}
