-- is_latest: the review that says where the pair stands (the last of its reviews).
select
    candidate_id, version, decision, survivor_id, retired_id, version_a, version_b, reason, request_id, commit_id,
    recorded_at, version = max(version) over (partition by candidate_id) as is_latest
from {{ source('ledger', 'duplicate_reviews') }}
