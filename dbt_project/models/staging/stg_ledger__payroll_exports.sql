select payroll_id, file_name, sha256, row_count, control_total, commit_id, recorded_at
from {{ source('ledger', 'payroll_exports') }}
