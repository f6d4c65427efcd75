-- One person's record, one row per entry: who they are, every plan they are or were in with each
-- status, every bill (due, paid, receipt), every grievance, every upload that created or changed
-- them, and every duplicate pair they are in (with the merges). A view: read for one person at a time (filter on individual_id or full_name), always current.
{{ config(materialized='view') }}

-- Every branch joins the person (people, NOT MATERIALIZED: inlined into each) and carries the
-- person's columns, so a filter on individual_id, full_name or region is pushed into every branch:
-- the person is found through an index (full_name through the expression index on
-- registry.individuals) and their entries through each table's index, at any registry size. Plans
-- held as beneficiary and through the household are two branches each, not a union (memberships)
-- joined in a branch: measured at 1,000,000 people, a search by name takes 24 ms this way and
-- 123 ms through such a union (`make bench`).
with people as not materialized (
    select
        individual_id,
        first_name || ' ' || last_name as full_name,
        household_code,
        region,
        location_code
    from {{ ref('individuals') }}
),

entries as (
    select
        individuals.individual_id,
        individuals.first_name || ' ' || individuals.last_name as full_name,
        individuals.household_code,
        individuals.region,
        individuals.location_code,
        1 as section_order,
        'identity' as section,
        individuals.updated_at as occurred_at,
        null::text as plan_code,
        null::text as cycle_code,
        null::text as reference,
        'version ' || individuals.version as status,
        null::numeric as amount_due,
        null::numeric as amount_paid,
        null::text as receipt,
        concat_ws(', ', 'born ' || individuals.dob, 'sex ' || individuals.sex,
                  'household ' || individuals.household_code, individuals.role,
                  individuals.recipient_type || ' recipient',
                  individuals.location_name, individuals.region) as detail
    from {{ ref('individuals') }} as individuals

    union all

    -- The plans a person is in as the beneficiary (INDIVIDUAL plans)...
    select
        people.individual_id,
        people.full_name,
        people.household_code,
        people.region,
        people.location_code,
        2,
        'plan status',
        history.changed_at,
        history.plan_code,
        null,
        history.beneficiary_id::text,
        history.to_status,
        null,
        null,
        null,
        concat_ws('; ', coalesce(history.from_status, 'enrolled') || ' → ' || history.to_status, 'as beneficiary',
                  history.reason, 'approved by ' || history.checker)
    from people
    join {{ ref('beneficiaries') }} as beneficiaries on beneficiaries.individual_id = people.individual_id
    join {{ ref('beneficiary_status_history') }} as history on history.beneficiary_id = beneficiaries.beneficiary_id

    union all

    -- ... and through their household (GROUP plans).
    select
        members.individual_id,
        members.full_name,
        members.household_code,
        members.region,
        members.location_code,
        2,
        'plan status',
        history.changed_at,
        history.plan_code,
        null,
        history.beneficiary_id::text,
        history.to_status,
        null,
        null,
        null,
        concat_ws('; ', coalesce(history.from_status, 'enrolled') || ' → ' || history.to_status,
                  'through household ' || members.household_code, history.reason, 'approved by ' || history.checker)
    from people as members
    join {{ ref('beneficiaries') }} as beneficiaries on beneficiaries.household_code = members.household_code
    join {{ ref('beneficiary_status_history') }} as history on history.beneficiary_id = beneficiaries.beneficiary_id

    union all

    select
        people.individual_id,
        people.full_name,
        people.household_code,
        people.region,
        people.location_code,
        3,
        'benefit',
        coalesce(bills.paid_on::timestamptz, bills.billed_at),
        bills.plan_code,
        bills.cycle_code,
        bills.bill_code,
        bills.status,
        {{ amount_due('bills') }},
        bills.amount_paid,
        bills.receipt,
        concat_ws('; ', bills.currency, 'payroll ' || bills.payroll_name, 'paid on ' || bills.paid_on)
    from people
    join {{ ref('beneficiaries') }} as beneficiaries on beneficiaries.individual_id = people.individual_id
    join {{ ref('bills') }} as bills on bills.beneficiary_id = beneficiaries.beneficiary_id

    union all

    select
        members.individual_id,
        members.full_name,
        members.household_code,
        members.region,
        members.location_code,
        3,
        'benefit',
        coalesce(bills.paid_on::timestamptz, bills.billed_at),
        bills.plan_code,
        bills.cycle_code,
        bills.bill_code,
        bills.status,
        {{ amount_due('bills') }},
        bills.amount_paid,
        bills.receipt,
        concat_ws('; ', bills.currency, 'payroll ' || bills.payroll_name, 'paid on ' || bills.paid_on)
    from people as members
    join {{ ref('beneficiaries') }} as beneficiaries on beneficiaries.household_code = members.household_code
    join {{ ref('bills') }} as bills on bills.beneficiary_id = beneficiaries.beneficiary_id

    union all

    select
        people.individual_id,
        people.full_name,
        people.household_code,
        people.region,
        people.location_code,
        4,
        'grievance',
        grievances.received_on::timestamptz,
        grievances.plan_code,
        null,
        grievances.grievance_code,
        grievances.status,
        null,
        null,
        null,
        concat_ws('; ', grievances.category, grievances.title, 'due ' || grievances.due_on,
                  'resolution: ' || grievances.resolution)
    from people
    join {{ ref('grievances') }} as grievances using (individual_id)

    union all

    select
        people.individual_id,
        people.full_name,
        people.household_code,
        people.region,
        people.location_code,
        5,
        'upload',
        uploads.uploaded_at,
        uploads.plan_code,
        null,
        uploads.file_name,
        case when versions.version = 1 then 'created' else 'changed (version ' || versions.version || ')' end,
        null,
        null,
        null,
        concat_ws('; ', uploads.kind, 'row ' || versions.row_number, 'by ' || uploads.uploaded_by)
    from people
    join {{ ref('stg_ledger__individual_versions') }} as versions using (individual_id)
    join {{ ref('stg_intake__uploads') }} as uploads using (upload_id)

    union all

    -- Pairs of records a duplicate search found alike with this person (as the pair's a), and what reviewers
    -- decided: a merge names the record merged into the other.
    select
        people.individual_id,
        people.full_name,
        people.household_code,
        people.region,
        people.location_code,
        6,
        'duplicate',
        coalesce(pairs.reviewed_at, pairs.found_at),
        null,
        null,
        'pair ' || pairs.candidate_id,
        pairs.status,
        null,
        null,
        null,
        concat_ws('; ', 'score ' || pairs.score, 'alike with individual ' || pairs.individual_b,
                  'merged ' || pairs.retired_id || ' into ' || pairs.survivor_id, pairs.review_reason)
    from people
    join {{ ref('duplicate_candidates') }} as pairs on pairs.individual_a = people.individual_id

    union all

    -- Pairs of records a duplicate search found alike with this person (as the pair's b), and what reviewers
    -- decided: a merge names the record merged into the other.
    select
        people.individual_id,
        people.full_name,
        people.household_code,
        people.region,
        people.location_code,
        6,
        'duplicate',
        coalesce(pairs.reviewed_at, pairs.found_at),
        null,
        null,
        'pair ' || pairs.candidate_id,
        pairs.status,
        null,
        null,
        null,
        concat_ws('; ', 'score ' || pairs.score, 'alike with individual ' || pairs.individual_a,
                  'merged ' || pairs.retired_id || ' into ' || pairs.survivor_id, pairs.review_reason)
    from people
    join {{ ref('duplicate_candidates') }} as pairs on pairs.individual_b = people.individual_id
)

-- Readers see the people of their regions only (a view: no row-level security of its own).
select * from entries
where {{ readable_region('region') }}
