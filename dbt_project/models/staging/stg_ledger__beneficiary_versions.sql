select
    beneficiary_id, version, plan_code, individual_id, household_code, status, attributes, reason, commit_id,
    upload_id, row_number, recorded_at
from {{ source('ledger', 'beneficiary_versions') }}
