-- Partner systems' requests to the registry API, for the Operations dashboard: per answer, the client, the
-- endpoint, how it went, how many search items were answered or rejected, how many records went out and how
-- long it took. Not the queries nor the ids returned: they name people (the audit trail keeps them).
-- A view: the API writes the audit trail outside any workflow, so no publish would refresh a table.
{{ config(materialized='view') }}
select
    answers.event_id,
    answers.answered_at,
    answers.client,
    answers.endpoint,
    answers.http_status,
    answers.outcome,
    answers.milliseconds,
    jsonb_array_length(answers.items) as search_items,
    (select count(*) from jsonb_array_elements(answers.items) as item where item ->> 'status' = 'rjct')
        as search_items_rejected,
    (select coalesce(sum((item ->> 'returned')::integer), 0) from jsonb_array_elements(answers.items) as item)
        as records_returned
from {{ ref('stg_ledger__registry_api_answers') }} as answers
