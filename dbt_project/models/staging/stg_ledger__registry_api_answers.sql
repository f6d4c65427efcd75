-- The registry API's answers, one per audit event (benefitflow.registry_api.app): who asked, how it went.
select
    event_id,
    occurred_at as answered_at,
    details ->> 'client' as client,
    details ->> 'endpoint' as endpoint,
    (details ->> 'http_status')::integer as http_status,
    outcome,
    (details ->> 'milliseconds')::numeric as milliseconds,
    coalesce(details -> 'items', '[]'::jsonb) as items
from {{ source('ledger', 'audit_events') }}
where action = 'registry_api.answer'
