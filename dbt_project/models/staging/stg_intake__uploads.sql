select
    upload_id,
    kind,
    nullif(plan_code, '') as plan_code,
    file_name,
    sha256,
    size_bytes,
    uploaded_by,
    uploaded_at,
    dag_id,
    run_id,
    status,
    row_count,
    valid_row_count,
    invalid_row_count,
    error_report_path,
    message,
    updated_at
from {{ source('intake', 'uploads') }}
