select cycle_code, plan_code, period_start, period_end, commit_id, recorded_at
from {{ source('ledger', 'payment_cycles') }}
