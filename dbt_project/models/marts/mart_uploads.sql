-- Upload history: status, counts, maker and checker, what the commit appended. Every manager reads it
-- (it has no region): nothing of the files' contents, so not the upload's message (it quotes refused
-- values) nor where the original and error report are (they go to the upload's maker and checkers only).
{{ config(materialized='view') }}  -- always current: a refused upload never publishes
with latest_decision as (
    select distinct on (upload_id) upload_id, checker, outcome, decided_at
    from {{ ref('stg_ledger__decisions') }}
    where upload_id is not null
    order by upload_id, decision_id desc
),

registry_changes as (
    select
        upload_id,
        count(*) filter (where version = 1) as individuals_created,
        count(*) filter (where version > 1) as individuals_updated
    from {{ ref('stg_ledger__individual_versions') }}
    group by upload_id
)

select
    uploads.upload_id,
    uploads.kind,
    uploads.mode,
    uploads.plan_code,
    uploads.file_name,
    uploads.uploaded_by as maker,
    latest_decision.checker,
    uploads.uploaded_at,
    latest_decision.decided_at,
    uploads.updated_at,
    uploads.status,
    uploads.row_count,
    uploads.valid_row_count,
    uploads.invalid_row_count,
    coalesce(registry_changes.individuals_created, 0) as individuals_created,
    coalesce(registry_changes.individuals_updated, 0) as individuals_updated
from {{ ref('stg_intake__uploads') }} as uploads
left join latest_decision using (upload_id)
left join registry_changes using (upload_id)
