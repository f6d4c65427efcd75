select upload_id, row_number, column_name, rule, value, message, severity
from {{ source('intake', 'row_errors') }}
