select commit_id, operation, dag_id, run_id, decision_id, upload_id, row_count, committed_at
from {{ source('ledger', 'commits') }}
