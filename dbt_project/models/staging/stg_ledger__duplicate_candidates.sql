select
    candidate_id, individual_a, version_a, individual_b, version_b, score, fields, rules_sha256, commit_id,
    recorded_at
from {{ source('ledger', 'duplicate_candidates') }}
