{#- What closing a plan would change: every beneficiary of the plan not yet graduated (selected by the
    validate step), with whether the transition table allows GRADUATED (the request's validated
    document), and why not. Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}]) }}

{{ status_change_proposal('beneficiaries', 'beneficiary_id', 'beneficiary_status_transitions',
                          carried=['plan_code', 'individual_id', 'household_code', 'attributes']) }}
