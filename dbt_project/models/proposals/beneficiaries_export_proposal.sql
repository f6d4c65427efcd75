{#- What the beneficiaries_export of personal data would write, per request (macros/export_proposal.sql).
    Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}]) }}

{{ export_proposal() }}
