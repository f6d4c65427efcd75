select
    request_id, kind, nullif(plan_code, '') as plan_code, parameters, document, requested_by, requested_at, dag_id,
    run_id, status, message, updated_at
from {{ source('intake', 'requests') }}
