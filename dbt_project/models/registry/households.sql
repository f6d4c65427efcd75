-- Households with their members counted, head and primary recipient, located where the head lives.
{{ config(indexes=[{'columns': ['household_code'], 'unique': True}],
          materialized='incremental', unique_key='household_code', incremental_strategy='delete+insert',
          on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the households its new commits created,
-- joined or left.
-- depends_on: {{ ref('stg_ledger__individual_versions') }}
{%- set touched = 'and household_code in (' ~ households_touched_by_new_commits() ~ ')' if is_incremental() else '' %}

with members as (
    select * from {{ ref('individuals') }}
    where household_code is not null {{ touched }}
),

-- Commits keep a household to one HEAD and one PRIMARY recipient; should the ledger ever hold two, the pick
-- is the same on every rebuild: the member whose latest version was committed first, then the lowest id
-- (head_count and primary_recipient_count show it, and their tests fail).
per_household as (
    select
        household_code,
        count(*) as member_count,
        count(*) filter (where role = 'HEAD') as head_count,
        count(*) filter (where recipient_type = 'PRIMARY') as primary_recipient_count,
        (array_agg(individual_id order by last_commit_id, individual_id)
            filter (where role = 'HEAD'))[1] as head_individual_id,
        (array_agg(individual_id order by last_commit_id, individual_id)
            filter (where recipient_type = 'PRIMARY'))[1] as primary_recipient_id,
        (array_agg(location_code order by last_commit_id, individual_id)
            filter (where role = 'HEAD'))[1] as location_code,
        (array_agg(region order by last_commit_id, individual_id) filter (where role = 'HEAD'))[1] as region
    from members
    group by household_code
)

select
    households.household_id,
    households.household_code,
    households.created_at,
    coalesce(per_household.member_count, 0) as member_count,
    coalesce(per_household.head_count, 0) as head_count,
    coalesce(per_household.primary_recipient_count, 0) as primary_recipient_count,
    per_household.head_individual_id,
    per_household.primary_recipient_id,
    per_household.location_code,
    per_household.region
from {{ ref('stg_ledger__households') }} as households
left join per_household using (household_code)
where true {{ touched }}
