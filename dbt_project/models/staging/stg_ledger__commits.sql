select commit_id, operation, dag_id, run_id, decision_id, upload_id, request_id, committed_at
from {{ source('ledger', 'commits') }}
