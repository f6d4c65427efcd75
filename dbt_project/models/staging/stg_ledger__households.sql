select household_id, household_code, commit_id, created_at
from {{ source('ledger', 'households') }}
