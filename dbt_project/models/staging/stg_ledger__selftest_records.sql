select commit_id, row_number, code, label, amount
from {{ source('ledger', 'selftest_records') }}
