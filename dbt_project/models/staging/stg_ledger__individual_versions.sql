select
    individual_id, version, commit_id, upload_id, row_number, first_name, last_name, dob, sex, national_id,
    location_code, location_name, region, household_code, role, recipient_type, attributes, merged_into, recorded_at
from {{ source('ledger', 'individual_versions') }}
