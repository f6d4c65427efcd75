{#- The status changes a grievance_status request would make: every ticket it named, with whether
    the transition table allows the change, and why not. Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}]) }}

{%- set request_id = run_value('request_id') %}

with request as (
    select request_id, document ->> 'status' as to_status
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ request_id | int if request_id is not none else 'null' }}
),

selected as (
    select selection.request_id, selection.grievance_id
    from {{ source('intake', 'request_selection') }} as selection
    where selection.request_id = {{ request_id | int if request_id is not none else 'null' }}
)

select
    selected.request_id,
    grievances.grievance_id,
    grievances.grievance_code,
    grievances.version + 1 as version,
    grievances.version as based_on_version,
    grievances.status as from_status,
    request.to_status,
    transitions.to_status is not null as allowed,
    case
        when grievances.status = request.to_status then 'already ' || request.to_status
        when transitions.to_status is null then grievances.status || ' cannot become ' || request.to_status
    end as refusal
from selected
join request using (request_id)
join {{ ref('grievances') }} as grievances using (grievance_id)
left join {{ source('ledger', 'grievance_status_transitions') }} as transitions
    on transitions.from_status = grievances.status and transitions.to_status = request.to_status
