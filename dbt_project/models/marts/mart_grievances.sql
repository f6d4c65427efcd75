-- One row per grievance ticket for M&E: category, channel, priority, status, where the reporter
-- lives, and whether it is overdue today. A view, so "overdue" is always as of today. No names,
-- no titles or descriptions (they may name people).
{{ config(materialized='view') }}

select
    grievances.grievance_code,
    grievances.category,
    grievances.channel,
    grievances.priority,
    grievances.status,
    grievances.plan_code,
    individuals.region,
    individuals.location_code,
    individuals.sex,
    grievances.incident_date,
    grievances.received_on,
    grievances.due_on,
    grievances.resolved_on,
    grievances.status_since,
    grievances.times_reopened,
    grievances.status not in ('RESOLVED', 'CLOSED') as is_open,
    grievances.status not in ('RESOLVED', 'CLOSED') and current_date > grievances.due_on as is_overdue,
    grievances.resolved_on > grievances.due_on as resolved_late,
    case when grievances.resolved_on is not null then grievances.resolved_on - grievances.received_on end
        as days_to_resolve
from {{ ref('grievances') }} as grievances
left join {{ ref('individuals') }} as individuals using (individual_id)
-- Readers see their regions' grievances only (a view: no row-level security of its own).
where {{ readable_region('individuals.region') }}
