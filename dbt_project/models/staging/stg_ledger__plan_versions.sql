select
    plan_code, version, commit_id, name, plan_type, valid_from, valid_to, max_beneficiaries, currency, status,
    document, recorded_at
from {{ source('ledger', 'plan_versions') }}
