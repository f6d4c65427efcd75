select
    bill_id, bill_code, cycle_code, plan_code, plan_version, beneficiary_id, individual_id, household_code,
    amount, currency, counted_members, top_ups, held, commit_id, recorded_at
from {{ source('ledger', 'bills') }}
