select payroll_id, status, commit_id, recorded_at
from {{ source('ledger', 'payroll_events') }}
