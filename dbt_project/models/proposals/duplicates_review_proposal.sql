{#- What a review of duplicate pairs would do: per pair the request selected (intake.request_selection, with the
    survivor a file named), the decision, which record survives and which is retired (a merge), the versions
    the pair will have, and whether it is allowed (else why not: the commit leaves it as it is). Both records
    side by side, for the checker's full proposal (a file only the maker, the checkers and the operators may
    download): names, date of birth, national id, phone, place, household, plans, bills and grievances.
    Run value: request_id. -#}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='request_id',
          indexes=[{'columns': ['request_id']}], on_schema_change='append_new_columns') }}
{%- set request_id = run_value('request_id') %}
{%- set request_literal = request_id | int if request_id is not none else 'null' %}

with request as (
    select request_id, document ->> 'decision' as decision, document ->> 'survivor' as survivor_rule
    from {{ ref('stg_intake__requests') }}
    where request_id = {{ request_literal }}
),

selected as (
    select candidate_id, individual_id as named_survivor
    from {{ source('intake', 'request_selection') }}
    where request_id = {{ request_literal }}
),

pairs as (
    select
        candidates.candidate_id,
        candidates.individual_a,
        candidates.individual_b,
        candidates.score,
        selected.named_survivor,
        reviews.decision as reviewed,
        reviews.survivor_id as merged_survivor,
        reviews.retired_id as merged_retired,
        reviews.commit_id as reviewed_in_commit
    from selected
    join {{ ref('stg_ledger__duplicate_candidates') }} as candidates using (candidate_id)
    left join {{ ref('stg_ledger__duplicate_reviews') }} as reviews
        on reviews.candidate_id = candidates.candidate_id and reviews.is_latest
),

-- Every record the pairs name, as its latest version says (a merged record too: an unmerge restores it).
people as (
    select distinct on (versions.individual_id) versions.*
    from {{ ref('stg_ledger__individual_versions') }} as versions
    where versions.individual_id in (
        select pairs.individual_a from pairs
        union
        select pairs.individual_b from pairs
    )
    order by versions.individual_id, versions.version desc
),

registered as (
    select individual_id, min(recorded_at) as registered_at
    from {{ ref('stg_ledger__individual_versions') }}
    where individual_id in (select individual_id from people)
    group by individual_id
),

-- Who survives a merge: the record a file named, else the older (registered first; the lower id on a tie); an
-- unmerge names the pair's merge.
roles as (
    select
        pairs.*,
        case
            when request.decision = 'UNMERGED' then pairs.merged_survivor
            when pairs.named_survivor is not null then pairs.named_survivor
            when ((ra.registered_at, pairs.individual_a) <= (rb.registered_at, pairs.individual_b))
                = (request.survivor_rule = 'older') then pairs.individual_a
            else pairs.individual_b
        end as survivor_id
    from pairs
    cross join request
    join registered as ra on ra.individual_id = pairs.individual_a
    join registered as rb on rb.individual_id = pairs.individual_b
),

-- A record in two pairs of this review is reviewed in the first of them only (merges do not chain in one commit).
ranked as (
    select
        roles.*,
        case when roles.survivor_id = roles.individual_a then roles.individual_b else roles.individual_a end
            as retired_id,
        exists(
            select from roles as other
            where other.candidate_id < roles.candidate_id
                and array[other.individual_a, other.individual_b] && array[roles.individual_a, roles.individual_b]
        ) as shares_a_record
    from roles
),

-- Where a merge finds the person billed twice in a cycle, the bill it cancels (ledger.bills_paid_twice, migration
-- 027: the same function the commit runs); a cycle where both bills are out for payment, or one paid and one out,
-- waits for the reconciliation.
twice as (
    select
        bills.retired_id,
        count(bills.bill_id) as bills_to_cancel,
        coalesce(sum(bills.amount), 0) as amount_to_cancel,
        coalesce(bool_or(bills.waits_for_reconciliation), false) as waits_for_reconciliation,
        count(*) filter (where bills.paid_twice) as paid_twice
    from (
        select
            array_agg(ranked.retired_id order by ranked.candidate_id) as retired,
            array_agg(ranked.survivor_id order by ranked.candidate_id) as survivors
        from ranked
        cross join request
        -- the pairs the commit may merge (the others are refused whatever their bills)
        where request.decision = 'CONFIRMED' and not ranked.shares_a_record and ranked.reviewed is null
    ) as merging
    cross join ledger.bills_paid_twice(merging.retired, merging.survivors) as bills  -- a function: lateral
    group by bills.retired_id
),

-- The bills an unmerge reinstates: those the pair's merge cancelled (ledger.bills_reinstated_by_unmerge, migration
-- 028: the function the commit and the database's check run).
reinstated as (
    select ranked.candidate_id, count(its.bill_id) as bills_to_reinstate
    from ranked
    cross join
        ledger.bills_reinstated_by_unmerge(
            ranked.candidate_id, ranked.merged_retired, ranked.merged_survivor, 9223372036854775807
        ) as its  -- a function: lateral; any commit to come is after the merge
    where ranked.reviewed = 'CONFIRMED'
    group by ranked.candidate_id
),

-- What an unmerge's checker is told: the retired record's bills a payroll paid to the survivor while the two were
-- merged (ledger.bills_paid_to_survivor, migration 029). They stay paid: nobody is billed again for those cycles.
paid_to_survivor as (
    select
        ranked.candidate_id,
        count(its.bill_id) as bills_paid_to_survivor,
        coalesce(sum(its.amount), 0) as amount_paid_to_survivor
    from ranked
    cross join
        ledger.bills_paid_to_survivor(ranked.merged_retired, ranked.merged_survivor) as its  -- a function: lateral
    where ranked.reviewed = 'CONFIRMED'
    group by ranked.candidate_id
),

paired as (
    select
        ranked.*,
        request.decision,
        survivor.version as survivor_version,
        retired.version as retired_version,
        survivor.household_code as survivor_household,
        retired.household_code as retired_household,
        retired.role as retired_role,
        retired.recipient_type as retired_recipient_type,
        survivor.merged_into as survivor_merged_into,
        retired.merged_into as retired_merged_into,
        (
            select count(*) from {{ ref('individuals') }} as members
            where members.household_code = retired.household_code and members.individual_id <> retired.individual_id
        ) as retired_household_others,
        -- the retired record's household enrolled as a household (a plan paying it, not one member)
        exists(
            select from {{ ref('beneficiaries') }} as enrolled
            where enrolled.household_code = retired.household_code and enrolled.individual_id is null
                and enrolled.status <> 'GRADUATED'
        ) as retired_household_enrolled,
        coalesce(twice.bills_to_cancel, 0) as bills_to_cancel,
        coalesce(twice.amount_to_cancel, 0) as amount_to_cancel,
        coalesce(twice.waits_for_reconciliation, false) as waits_for_reconciliation,
        coalesce(twice.paid_twice, 0) as paid_twice,
        survivor.national_id as survivor_national_id,
        retired.national_id as retired_national_id,
        coalesce(reinstated.bills_to_reinstate, 0) as bills_to_reinstate,
        coalesce(paid_to_survivor.bills_paid_to_survivor, 0) as bills_paid_to_survivor,
        coalesce(paid_to_survivor.amount_paid_to_survivor, 0) as amount_paid_to_survivor,
        -- the household the survivor took at the merge this unmerges (none if it took none)
        (
            select taken.household_code
            from {{ ref('stg_ledger__individual_versions') }} as taken
            inner join {{ ref('stg_ledger__duplicate_reviews') }} as merge
                on merge.commit_id = taken.commit_id
            where taken.individual_id = ranked.survivor_id and merge.candidate_id = ranked.candidate_id
                and merge.decision = 'CONFIRMED'
            order by merge.version desc
            limit 1
        ) as household_taken_at_merge
    from ranked
    cross join request
    left join people as survivor on survivor.individual_id = ranked.survivor_id
    left join people as retired on retired.individual_id = ranked.retired_id
    left join twice on twice.retired_id = ranked.retired_id
    left join reinstated on reinstated.candidate_id = ranked.candidate_id
    left join paid_to_survivor on paid_to_survivor.candidate_id = ranked.candidate_id
),

judged as (
    select
        paired.*,
        -- A merge moves the retired record's household membership to a survivor that has none.
        (paired.decision = 'CONFIRMED' and paired.survivor_household is null and paired.retired_household is not null)
            as takes_household,
        -- Whether the survivor gets a new version: it takes the household at a merge, or gives it back at an
        -- unmerge (if it is still in the household it took).
        coalesce(
            (paired.decision = 'CONFIRMED' and paired.survivor_household is null and paired.retired_household is not null)
            or (paired.decision = 'UNMERGED' and paired.survivor_household = paired.household_taken_at_merge),
            false
        ) as survivor_changes,
        case
            when paired.survivor_id is null then 'not merged: nothing to unmerge'
            when paired.shares_a_record and paired.decision <> 'DISMISSED'
                then 'a record of this pair is in an earlier pair of this review: review it after'
            when paired.decision in ('CONFIRMED', 'DISMISSED') and paired.reviewed is not null
                then 'already ' || lower(paired.reviewed)
            when paired.decision = 'UNMERGED' and coalesce(paired.reviewed, '') <> 'CONFIRMED'
                then 'not merged: nothing to unmerge'
            when paired.named_survivor is not null and paired.named_survivor not in (paired.individual_a, paired.individual_b)
                then 'the survivor named is not one of the pair'
            when paired.decision = 'CONFIRMED'
                 and (paired.survivor_merged_into is not null or paired.retired_merged_into is not null)
                then 'a record of this pair was merged into another: dismiss the pair, or unmerge that first'
            when paired.decision = 'UNMERGED' and paired.survivor_merged_into is not null
                then 'the survivor was merged into another record since: unmerge that first'
            when paired.decision = 'UNMERGED' and not coalesce(paired.retired_merged_into = paired.survivor_id, false)
                then 'the retired record is no longer merged into the survivor'
            when paired.decision = 'CONFIRMED' and paired.survivor_household is not null
                 and paired.retired_household is not null and paired.retired_household_others > 0
                 and (paired.retired_role = 'HEAD' or paired.retired_recipient_type = 'PRIMARY')
                then 'the retired record is the HEAD or primary recipient of household ' || paired.retired_household
                     || ', which keeps other members: name another first'
            when paired.decision = 'CONFIRMED' and paired.survivor_household is not null
                 and paired.retired_household_others = 0 and paired.retired_household_enrolled
                then 'the retired record is the only member of household ' || paired.retired_household
                     || ', which is enrolled in a plan: the survivor has a household of its own; end that enrolment'
                     || ' or move the survivor first'
            when paired.decision = 'CONFIRMED' and paired.waits_for_reconciliation
                then 'billed twice in a cycle whose bills are both out for payment (or one paid): reconcile the'
                     || ' payroll first'
            when paired.decision = 'UNMERGED' and paired.survivor_national_id = paired.retired_national_id
                then 'the survivor took the retired record''s national id since the merge: correct one of them first'
        end as refusal
    from paired
)

select
    request.request_id,
    judged.candidate_id,
    judged.score,
    judged.decision,
    judged.refusal is null as allowed,
    judged.refusal,
    judged.individual_a,
    judged.individual_b,
    case when judged.decision = 'DISMISSED' then null else judged.survivor_id end as survivor_id,
    case when judged.decision = 'DISMISSED' then null else judged.retired_id end as retired_id,
    judged.takes_household,
    judged.survivor_changes,
    -- Where the person is billed twice in a cycle, a merge cancels one unpaid bill; the commit cancels exactly these.
    case when judged.decision = 'CONFIRMED' then judged.bills_to_cancel else 0 end as bills_to_cancel,
    case when judged.decision = 'CONFIRMED' then judged.amount_to_cancel else 0 end as amount_to_cancel,
    -- cycles in which both bills were paid already (nothing left to cancel; the checker is told)
    case when judged.decision = 'CONFIRMED' then judged.paid_twice else 0 end as paid_twice,
    -- An unmerge reinstates the bills its merge cancelled.
    case when judged.decision = 'UNMERGED' then judged.bills_to_reinstate else 0 end as bills_to_reinstate,
    -- An unmerge leaves paid what a payroll paid to the survivor for the retired record while they were merged.
    case when judged.decision = 'UNMERGED' then judged.bills_paid_to_survivor else 0 end as bills_paid_to_survivor,
    case when judged.decision = 'UNMERGED' then judged.amount_paid_to_survivor else 0 end as amount_paid_to_survivor,
    a.version as based_on_a,
    b.version as based_on_b,
    -- The pair's versions once the review is committed: a merge or an unmerge gives the retired record a new one,
    -- and the survivor one when it takes (or gives back) the household membership. The commit appends exactly these.
    a.version + case
        when judged.decision = 'DISMISSED' then 0
        when judged.individual_a = judged.retired_id then 1
        when judged.survivor_changes then 1
        else 0 end as version_a,
    b.version + case
        when judged.decision = 'DISMISSED' then 0
        when judged.individual_b = judged.retired_id then 1
        when judged.survivor_changes then 1
        else 0 end as version_b,
    -- Side by side (the full proposal only; the request shows none of it).
    concat_ws(' ', a.first_name, a.last_name) as name_a,
    concat_ws(' ', b.first_name, b.last_name) as name_b,
    a.dob as dob_a,
    b.dob as dob_b,
    a.sex as sex_a,
    b.sex as sex_b,
    a.national_id as national_id_a,
    b.national_id as national_id_b,
    a.attributes ->> 'phone' as phone_a,
    b.attributes ->> 'phone' as phone_b,
    concat_ws(', ', a.location_name, a.location_code, a.region) as place_a,
    concat_ws(', ', b.location_name, b.location_code, b.region) as place_b,
    concat_ws(' ', a.household_code, a.role, a.recipient_type) as household_a,
    concat_ws(' ', b.household_code, b.role, b.recipient_type) as household_b,
    (
        select string_agg(enrolled.plan_code || ' ' || enrolled.status, '; ' order by enrolled.plan_code)
        from {{ ref('beneficiaries') }} as enrolled where enrolled.individual_id = a.individual_id
    ) as plans_a,
    (
        select string_agg(enrolled.plan_code || ' ' || enrolled.status, '; ' order by enrolled.plan_code)
        from {{ ref('beneficiaries') }} as enrolled where enrolled.individual_id = b.individual_id
    ) as plans_b,
    (
        select string_agg(last.cycle_code || ' ' || last.status || ' ' || last.amount, '; ' order by last.billed_at desc)
        from (
            select billed.cycle_code, billed.status, billed.amount, billed.billed_at from {{ ref('bills') }} as billed
            where billed.individual_id = a.individual_id order by billed.billed_at desc limit 3
        ) as last
    ) as last_bills_a,
    (
        select string_agg(last.cycle_code || ' ' || last.status || ' ' || last.amount, '; ' order by last.billed_at desc)
        from (
            select billed.cycle_code, billed.status, billed.amount, billed.billed_at from {{ ref('bills') }} as billed
            where billed.individual_id = b.individual_id order by billed.billed_at desc limit 3
        ) as last
    ) as last_bills_b,
    (
        select count(*) from {{ ref('grievances') }} as tickets where tickets.individual_id = a.individual_id
    ) as grievances_a,
    (
        select count(*) from {{ ref('grievances') }} as tickets where tickets.individual_id = b.individual_id
    ) as grievances_b
from judged
cross join request
join people as a on a.individual_id = judged.individual_a
join people as b on b.individual_id = judged.individual_b
