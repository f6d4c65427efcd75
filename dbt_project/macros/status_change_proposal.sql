{#- The status changes a request would make (a beneficiary_status or grievance_status request, a plan's
    closing): every row the request selected (intake.request_selection.<key>) in its current state
    (`state_model`), with whether `transitions` (a ledger table of allowed from -> to) allows the move to the
    request's status, and why not. `carried` are columns of the current state the commit appends again. -#}
{% macro status_change_proposal(state_model, key, transitions, carried=[]) %}
{%- set request_id = run_value('request_id') %}
{%- set request_literal = request_id | int if request_id is not none else 'null' %}
with request as (
    select request_id, document ->> 'status' as to_status
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ request_literal }}
),

selected as (
    select selection.request_id, selection.{{ key }}
    from {{ source('intake', 'request_selection') }} as selection
    where selection.request_id = {{ request_literal }}
)

select
    selected.request_id,
    current_state.{{ key }},
    current_state.version + 1 as version,
    current_state.version as based_on_version,
    {%- for column in carried %}
    current_state.{{ column }},
    {%- endfor %}
    current_state.status as from_status,
    request.to_status,
    transitions.to_status is not null as allowed,
    case
        when current_state.status = request.to_status then 'already ' || request.to_status
        when transitions.to_status is null then current_state.status || ' cannot become ' || request.to_status
    end as refusal
from selected
join request using (request_id)
join {{ ref(state_model) }} as current_state using ({{ key }})
left join {{ source('ledger', transitions) }} as transitions
    on transitions.from_status = current_state.status and transitions.to_status = request.to_status
{%- endmacro %}
