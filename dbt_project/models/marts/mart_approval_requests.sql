-- Every approval request a workflow made, with the checker group it went to and, once decided, the
-- outcome: what each group has pending and how long its decisions take. A view, so hours_waiting is
-- as of now. Under a policy needing N distinct checkers a run is asked N times: it is one row here,
-- with the approvals given so far, pending until the last checker decides (or one rejects).
-- A run stopped by hand before anyone answered stays PENDING here (the ledger never heard). A request
-- whose upload or request its run has since taken in again (a cleared intake) is SUPERSEDED: no answer
-- to it can commit anything, so it is no longer waiting for a checker.
{{ config(materialized='view') }}

with requests as (
    select
        events.object_id,
        split_part(events.object_id, '/', 1) as dag_id,
        substr(events.object_id, length(split_part(events.object_id, '/', 1)) + 2) as run_id,
        replace(events.action, '.approval_requested', '') as operation,
        events.actor as maker,
        events.details ->> 'group' as checker_group,
        jsonb_array_length(coalesce(events.details -> 'assignees', '[]'::jsonb)) as assignees,
        coalesce((events.details ->> 'of')::int, 1) as approvals_required,
        (events.details ->> 'upload_id')::bigint as upload_id,
        (events.details ->> 'request_id')::bigint as request_id,
        events.occurred_at as requested_at,
        min(events.occurred_at) over (partition by events.object_id) as first_requested_at
    from {{ source('ledger', 'audit_events') }} as events
    where events.action like '%.approval\_requested' and events.object_type = 'run'
),

latest_of_run as (
    select distinct on (dag_id, run_id) *
    from requests
    order by dag_id, run_id, requested_at desc
),

superseded_inputs as (
    select upload_id, null::bigint as request_id from {{ ref('stg_intake__uploads') }} where status = 'SUPERSEDED'
    union all
    select null::bigint, request_id from {{ ref('stg_intake__requests') }} where status = 'SUPERSEDED'
),

latest_request as (
    select
        latest_of_run.*,
        exists(
            select 1 from superseded_inputs
            where superseded_inputs.upload_id = latest_of_run.upload_id
                or superseded_inputs.request_id = latest_of_run.request_id
        ) as input_superseded
    from latest_of_run
),

approvals_before_decision as (
    select object_id, count(distinct actor) as approvals
    from {{ source('ledger', 'audit_events') }}
    where action like '%.approval\_given' and object_type = 'run' and outcome = 'APPROVED'
    group by object_id
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
    latest_request.first_requested_at as requested_at,
    latest_request.approvals_required,
    coalesce(approvals_before_decision.approvals, 0)
        + case when latest_decision.outcome = 'APPROVED' then 1 else 0 end as approvals_given,
    case
        when latest_decision.outcome is not null then latest_decision.outcome
        when latest_request.input_superseded then 'SUPERSEDED'
        else 'PENDING'
    end as status,
    latest_decision.checker,
    latest_decision.decided_at,
    -- A superseded request waits for nobody: no hours counted.
    case when latest_decision.outcome is not null or not latest_request.input_superseded
        then round(extract(epoch from coalesce(latest_decision.decided_at, now()) - latest_request.first_requested_at)
                   / 3600.0, 2)::numeric(12, 2)
    end as hours_waiting
from latest_request
left join approvals_before_decision using (object_id)
left join latest_decision using (dag_id, run_id)
