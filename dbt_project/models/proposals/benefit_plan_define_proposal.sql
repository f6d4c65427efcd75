{#- The plan version a definition request would append, from the document its validation kept.
    Vars (set by the workflow, never user text): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}]) }}

{%- set request_id = run_value('request_id') %}
select
    requests.request_id,
    requests.document -> 'document' ->> 'code' as plan_code,
    (requests.document ->> 'version')::integer as version,
    (requests.document ->> 'based_on_version')::integer as based_on_version,
    requests.document -> 'document' ->> 'name' as name,
    requests.document -> 'document' ->> 'type' as plan_type,
    (requests.document -> 'document' ->> 'valid_from')::date as valid_from,
    (requests.document -> 'document' ->> 'valid_to')::date as valid_to,
    (requests.document -> 'document' ->> 'max_beneficiaries')::integer as max_beneficiaries,
    requests.document -> 'document' ->> 'currency' as currency,
    requests.document -> 'document' as document
from {{ ref('stg_intake__requests') }} as requests
where requests.request_id = {{ request_id | int if request_id is not none else 'null' }}
    and requests.kind = 'benefit_plan_define'
