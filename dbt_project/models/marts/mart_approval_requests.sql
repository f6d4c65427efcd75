-- Every approval request a workflow made, with the checker group it went to and, once decided, the
-- outcome: what each group has pending and how long its decisions take. A view, so hours_waiting is
-- as of now. A run stopped by hand before anyone answered stays PENDING here (the ledger never heard).
{{ config(materialized='view') }}

with requests as (
    select
        split_part(events.object_id, '/', 1) as dag_id,
        substr(events.object_id, length(split_part(events.object_id, '/', 1)) + 2) as run_id,
        replace(events.action, '.approval_requested', '') as operation,
        events.actor as maker,
        events.details ->> 'group' as checker_group,
        jsonb_array_length(coalesce(events.details -> 'assignees', '[]'::jsonb)) as assignees,
        events.occurred_at as requested_at
    from {{ source('ledger', 'audit_events') }} as events
    where events.action like '%.approval\_requested' and events.object_type = 'run'
),

latest_request as (
    select distinct on (dag_id, run_id) *
    from requests
    order by dag_id, run_id, requested_at desc
),

latest_decision as (
    select distinct on (dag_id, run_id) dag_id, run_id, checker, outcome, decided_at
    from {{ ref('stg_ledger__decisions') }}
    order by dag_id, run_id, decided_at desc
)

select
    latest_request.operation,
    latest_request.dag_id,
    latest_request.run_id,
    latest_request.maker,
    latest_request.checker_group,
    latest_request.assignees,
    latest_request.requested_at,
    coalesce(latest_decision.outcome, 'PENDING') as status,
    latest_decision.checker,
    latest_decision.decided_at,
    round(extract(epoch from coalesce(latest_decision.decided_at, now()) - latest_request.requested_at) / 3600.0, 2)
        ::numeric(12, 2) as hours_waiting
from latest_request
left join latest_decision using (dag_id, run_id)
