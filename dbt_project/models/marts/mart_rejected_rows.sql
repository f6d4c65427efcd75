-- Rows refused at validation, counted per upload, rule and column: which rules reject most, in
-- which kinds of file. A view, so a refused upload (whose run never publishes) shows at once.
{{ config(materialized='view') }}

select
    uploads.upload_id,
    uploads.kind,
    uploads.plan_code,
    uploads.file_name,
    uploads.uploaded_by as maker,
    uploads.uploaded_at,
    uploads.status as upload_status,
    errors.rule,
    errors.column_name,
    errors.severity,
    count(distinct errors.row_number) as rows_refused
from {{ ref('stg_intake__row_errors') }} as errors
join {{ ref('stg_intake__uploads') }} as uploads using (upload_id)
where errors.row_number is not null
group by uploads.upload_id, uploads.kind, uploads.plan_code, uploads.file_name, uploads.uploaded_by,
         uploads.uploaded_at, uploads.status, errors.rule, errors.column_name, errors.severity
