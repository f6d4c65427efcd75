select
    decision_id,
    operation,
    dag_id,
    run_id,
    upload_id,
    request_id,
    maker,
    checker,
    checker_group,
    policy,
    required_approvals,
    -- Text, not text[]: dbt unit tests cannot build array fixtures for models reading this one.
    array_to_string(other_approvers, ', ') as other_approvers,
    outcome,
    reason,
    requested_at,
    decided_at
from {{ source('ledger', 'decisions') }}
