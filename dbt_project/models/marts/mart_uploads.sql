-- Upload history for the Operations dashboard: status, counts, maker and checker.
with latest_decision as (
    select distinct on (upload_id) upload_id, checker, outcome, decided_at
    from {{ ref('stg_ledger__decisions') }}
    where upload_id is not null
    order by upload_id, decision_id desc
)
select
    uploads.upload_id,
    uploads.kind,
    uploads.plan_code,
    uploads.file_name,
    uploads.uploaded_by as maker,
    latest_decision.checker,
    uploads.uploaded_at,
    latest_decision.decided_at,
    uploads.status,
    uploads.row_count,
    uploads.valid_row_count,
    uploads.invalid_row_count
from {{ ref('stg_intake__uploads') }} as uploads
left join latest_decision using (upload_id)
