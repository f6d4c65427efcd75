select payroll_id, bill_id, amount, recipient_id, commit_id
from {{ source('ledger', 'payroll_bills') }}
