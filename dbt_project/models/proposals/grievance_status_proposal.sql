{#- The status changes a grievance_status request would make: every ticket it named, with whether
    the transition table allows the change, and why not. Vars (set by the workflow): request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}]) }}

{{ status_change_proposal('grievances', 'grievance_id', 'grievance_status_transitions',
                          carried=['grievance_code']) }}
