select payroll_id, bill_id, amount, commit_id
from {{ source('ledger', 'payroll_bills') }}
