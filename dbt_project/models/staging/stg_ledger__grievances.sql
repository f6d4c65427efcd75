select
    grievance_id, grievance_code, individual_id, beneficiary_id, title, description, category, channel, priority,
    incident_date, received_on, due_on, commit_id, upload_id, row_number, recorded_at
from {{ source('ledger', 'grievances') }}
