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
    outcome,
    reason,
    requested_at,
    decided_at
from {{ source('ledger', 'decisions') }}
