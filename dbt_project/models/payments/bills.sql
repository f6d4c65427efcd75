-- Every bill with its status, payroll and payment as the ledger says: created DUE (or HELD above
-- the plan's transaction limit), then released, paid, failed or moved by later events; CANCELLED while
-- cancelled more often than reinstated (a merge of duplicates and its unmerge; migration 027), and
-- otherwise as its latest other event says.
{{ config(indexes=[
    {'columns': ['bill_id'], 'unique': True},
    {'columns': ['bill_code'], 'unique': True},
    {'columns': ['cycle_code', 'plan_code']},
    {'columns': ['beneficiary_id']},
    {'columns': ['payroll_id', 'status']},
    {'columns': ['individual_id']},
    {'columns': ['household_code']},
], materialized='incremental', unique_key='bill_id', incremental_strategy='delete+insert',
   on_schema_change='fail', pre_hook="{{ take_in_commits() }}") }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the bills its new commits created, moved or settled.
-- depends_on: {{ ref('stg_ledger__duplicate_reviews') }}
{%- set touched = 'where bill_id in (select bill_id from touched)' if is_incremental() else '' %}
{%- set and_touched = 'and bill_id in (select bill_id from touched)' if is_incremental() else '' %}
{#- whom its payroll paid, while it is out for payment or paid (not failed since) -#}
{%- set paid_to = "case when latest_event.status = 'FAILED' then null"
                  " else coalesce(paid_merged.survivor_id, latest_payroll.recipient_id) end" %}

{% if is_incremental() -%}
with touched as (
    {{ bills_touched_by_new_commits() }}
),

{% else -%}
with
{% endif -%}
latest_event as (
    select distinct on (bill_id) bill_id, status, amount_paid, receipt, paid_on
    from {{ ref('stg_ledger__bill_events') }}
    where status in ('DUE', 'PAID', 'FAILED') {{ and_touched }}
    order by bill_id, commit_id desc
),

cancelled as (
    select bill_id
    from {{ ref('stg_ledger__bill_events') }}
    where status in ('CANCELLED', 'REINSTATED') {{ and_touched }}
    group by bill_id
    having count(*) filter (where status = 'CANCELLED') > count(*) filter (where status = 'REINSTATED')
),

-- Whom a bill pays (ledger.bill_recipients, migration 029): while it is out for payment or paid, whom its payroll
-- paid; otherwise the person its enrolment belongs to now (a merge or an unmerge of duplicate records moved it); either
-- one's survivor once merged into another record (migration 027; both sets are small).
moved as (
    select moved.beneficiary_id, moved.individual_id from ledger.moved_enrolments() as moved
),

merged as (
    select merged.individual_id, merged.survivor_id from ledger.merged_records() as merged
),

latest_payroll as (
    select distinct on (payroll_bills.bill_id)
        payroll_bills.bill_id, payroll_bills.payroll_id, payrolls.payroll_name, payroll_bills.recipient_id
    from {{ ref('stg_ledger__payroll_bills') }} as payroll_bills
    join {{ ref('stg_ledger__payrolls') }} as payrolls using (payroll_id)
    {{ touched }}
    order by payroll_bills.bill_id, payroll_bills.payroll_id desc
)

select
    bills.bill_id,
    bills.bill_code,
    bills.cycle_code,
    bills.plan_code,
    bills.plan_version,
    bills.beneficiary_id,
    case
        when bills.individual_id is not null
            then coalesce({{ paid_to }}, merged.survivor_id, moved.individual_id, bills.individual_id)
    end as individual_id,
    bills.individual_id as billed_individual_id,
    {{ paid_to }} as paid_to_individual_id,
    bills.household_code,
    bills.amount,
    bills.currency,
    bills.held as held_at_billing,
    case
        when cancelled.bill_id is not null then 'CANCELLED'
        else coalesce(latest_event.status, case when bills.held then 'HELD' else 'DUE' end)
    end as status,
    latest_payroll.payroll_id,
    latest_payroll.payroll_name,
    case when latest_event.status = 'PAID' then latest_event.amount_paid end as amount_paid,
    case when latest_event.status = 'PAID' then latest_event.receipt end as receipt,
    case when latest_event.status = 'PAID' then latest_event.paid_on end as paid_on,
    bills.recorded_at as billed_at
from {{ ref('stg_ledger__bills') }} as bills
left join latest_event using (bill_id)
left join cancelled using (bill_id)
left join moved on moved.beneficiary_id = bills.beneficiary_id and bills.individual_id is not null
left join merged on merged.individual_id = coalesce(moved.individual_id, bills.individual_id)
left join latest_payroll using (bill_id)
left join merged as paid_merged on paid_merged.individual_id = latest_payroll.recipient_id
{{ touched }}
