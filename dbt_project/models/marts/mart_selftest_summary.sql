-- One row per committed self-test upload: how many rows and what total.
select
    upload_id,
    min(committed_at) as committed_at,
    min(maker) as maker,
    min(checker) as checker,
    count(*) as row_count,
    sum(amount)::numeric(16, 2) as total_amount
from {{ ref('selftest_records') }}
group by upload_id
