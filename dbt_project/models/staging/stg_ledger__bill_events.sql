select
    bill_id, status, payroll_id, amount_paid, receipt, paid_on, provider_row, reason, upload_id, row_number,
    commit_id, recorded_at
from {{ source('ledger', 'bill_events') }}
