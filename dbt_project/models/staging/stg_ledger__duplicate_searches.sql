-- The registry commits each search covered (covered_commits) stay in the ledger: matching.commits_to_search reads them.
select commit_id, request_id, scope, rules_sha256, rules, recorded_at
from {{ source('ledger', 'duplicate_searches') }}
