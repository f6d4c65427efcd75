-- Current self-test facts: everything committed, with who approved it.
select
    records.commit_id,
    records.row_number,
    records.code,
    records.label,
    records.amount,
    commits.upload_id,
    commits.committed_at,
    decisions.maker,
    decisions.checker
from {{ ref('stg_ledger__selftest_records') }} as records
join {{ ref('stg_ledger__commits') }} as commits using (commit_id)
join {{ ref('stg_ledger__decisions') }} as decisions using (decision_id)
