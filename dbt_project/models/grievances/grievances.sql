-- Every grievance ticket as its latest status says, with when it was resolved and how often reopened, and whom it is
-- about now: the person it was filed for or, once that record is merged into another as a duplicate, the survivor
-- (merges chain; an unmerge gives the tickets back). The ledger keeps the ticket as filed.
{{ config(indexes=[
    {'columns': ['grievance_id'], 'unique': True},
    {'columns': ['grievance_code'], 'unique': True},
    {'columns': ['individual_id']},
], materialized='incremental', unique_key='grievance_id', incremental_strategy='delete+insert',
   on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the tickets its new commits recorded or moved, and
-- after a merge or an unmerge the tickets of every record ever merged (a few).
-- depends_on: {{ ref('stg_ledger__duplicate_reviews') }}

with recursive events as (
    select * from {{ ref('stg_ledger__grievance_events') }}
    {%- if is_incremental() %}
    where grievance_id in (
        {{ touched_by_new_commits(ref('stg_ledger__grievances'), 'grievance_id') }}
        union
        {{ touched_by_new_commits(ref('stg_ledger__grievance_events'), 'grievance_id') }}
        union
        select tickets.grievance_id
        from {{ ref('stg_ledger__grievances') }} as tickets
        where tickets.individual_id in (
            select ever.individual_id from {{ ref('stg_ledger__individual_versions') }} as ever
            where ever.merged_into is not null
                and exists (
                    select from {{ ref('stg_ledger__duplicate_reviews') }} as reviews
                    where reviews.commit_id = any({{ new_commits() }}) and reviews.decision <> 'DISMISSED'
                )
        )
    )
    {%- endif %}
),

-- Records merged into another now (their latest version says so).
merged as (
    select merged.individual_id, merged.merged_into
    from {{ ref('stg_ledger__individual_versions') }} as merged
    where merged.merged_into is not null
        and merged.version = (
            select max(latest.version) from {{ ref('stg_ledger__individual_versions') }} as latest
            where latest.individual_id = merged.individual_id
        )
),

-- Each merged record's survivor, through a chain of merges (a survivor merged in turn into a third record).
survivors (individual_id, survivor_id, depth) as (
    select merged.individual_id, merged.merged_into, 1 from merged
    union all
    select survivors.individual_id, merged.merged_into, survivors.depth + 1
    from survivors
    inner join merged on merged.individual_id = survivors.survivor_id
    where survivors.depth < 20
),

last_survivors as (
    select distinct on (survivors.individual_id) survivors.individual_id, survivors.survivor_id
    from survivors
    order by survivors.individual_id, survivors.depth desc
),

-- A beneficiary's plan never changes: it is the one its first version names (the ledger, not the state).
plans_of_beneficiaries as (
    select beneficiary_id, plan_code
    from {{ ref('stg_ledger__beneficiary_versions') }}
    where version = 1
),

per_ticket as (
    select
        grievance_id,
        max(version) as version,
        (array_agg(status order by version desc))[1] as status,
        max(recorded_at) as status_since,
        (array_agg(comment order by version desc) filter (where status = 'RESOLVED'))[1] as resolution,
        (array_agg(recorded_at order by version desc) filter (where status = 'RESOLVED'))[1] as resolved_at,
        count(*) filter (where status = 'OPEN' and version > 2) as times_reopened
    from events
    group by grievance_id
)

select
    grievances.grievance_id,
    grievances.grievance_code,
    coalesce(last_survivors.survivor_id, grievances.individual_id) as individual_id,
    grievances.individual_id as filed_for_individual_id,
    grievances.beneficiary_id,
    beneficiaries.plan_code,
    grievances.title,
    grievances.description,
    grievances.category,
    grievances.channel,
    grievances.priority,
    grievances.incident_date,
    grievances.received_on,
    grievances.due_on,
    per_ticket.status,
    per_ticket.status_since,
    per_ticket.version,
    case when per_ticket.status in ('RESOLVED', 'CLOSED') then per_ticket.resolution end as resolution,
    case when per_ticket.status in ('RESOLVED', 'CLOSED') then per_ticket.resolved_at::date end as resolved_on,
    per_ticket.times_reopened,
    grievances.upload_id,
    grievances.recorded_at
from {{ ref('stg_ledger__grievances') }} as grievances
join per_ticket using (grievance_id)
left join plans_of_beneficiaries as beneficiaries using (beneficiary_id)
left join last_survivors on last_survivors.individual_id = grievances.individual_id
