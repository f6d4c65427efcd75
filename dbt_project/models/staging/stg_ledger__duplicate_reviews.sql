select
    candidate_id, version, decision, survivor_id, retired_id, version_a, version_b, reason, request_id, commit_id,
    recorded_at
from {{ source('ledger', 'duplicate_reviews') }}
