select
    payroll_id, payroll_name, cycle_code, plan_code, payment_point, criteria, include_unpaid_from, request_id,
    commit_id, recorded_at
from {{ source('ledger', 'payrolls') }}
