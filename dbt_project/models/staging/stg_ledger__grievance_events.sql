select grievance_id, version, status, comment, commit_id, recorded_at
from {{ source('ledger', 'grievance_events') }}
