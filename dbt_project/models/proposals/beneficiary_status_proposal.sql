{#- The status changes a request would make: every beneficiary it selected, with whether the
    transition table allows the change, and why not. The new status comes from the request's
    validated document. Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}]) }}

{%- set request_id = run_value('request_id') %}

with request as (
    select request_id, document ->> 'status' as to_status
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ request_id | int if request_id is not none else 'null' }}
),

selected as (
    select selection.request_id, selection.beneficiary_id
    from {{ source('intake', 'request_selection') }} as selection
    where selection.request_id = {{ request_id | int if request_id is not none else 'null' }}
)

select
    selected.request_id,
    beneficiaries.beneficiary_id,
    beneficiaries.version + 1 as version,
    beneficiaries.version as based_on_version,
    beneficiaries.plan_code,
    beneficiaries.individual_id,
    beneficiaries.household_code,
    beneficiaries.attributes,
    beneficiaries.status as from_status,
    request.to_status,
    transitions.to_status is not null as allowed,
    case
        when beneficiaries.status = request.to_status then 'already ' || request.to_status
        when transitions.to_status is null then beneficiaries.status || ' cannot become ' || request.to_status
    end as refusal
from selected
join request using (request_id)
join {{ ref('beneficiaries') }} as beneficiaries using (beneficiary_id)
left join {{ source('ledger', 'beneficiary_status_transitions') }} as transitions
    on transitions.from_status = beneficiaries.status and transitions.to_status = request.to_status
