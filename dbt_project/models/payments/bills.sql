-- Every bill with its status, payroll and payment as the ledger says: created DUE (or HELD above
-- the plan's transaction limit), then released, paid, failed or moved by later events.
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
{%- set touched = 'where bill_id in (select bill_id from touched)' if is_incremental() else '' %}

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
    {{ touched }}
    order by bill_id, commit_id desc
),

latest_payroll as (
    select distinct on (payroll_bills.bill_id) payroll_bills.bill_id, payroll_bills.payroll_id, payrolls.payroll_name
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
    bills.individual_id,
    bills.household_code,
    bills.amount,
    bills.currency,
    bills.held as held_at_billing,
    coalesce(latest_event.status, case when bills.held then 'HELD' else 'DUE' end) as status,
    latest_payroll.payroll_id,
    latest_payroll.payroll_name,
    case when latest_event.status = 'PAID' then latest_event.amount_paid end as amount_paid,
    case when latest_event.status = 'PAID' then latest_event.receipt end as receipt,
    case when latest_event.status = 'PAID' then latest_event.paid_on end as paid_on,
    bills.recorded_at as billed_at
from {{ ref('stg_ledger__bills') }} as bills
left join latest_event using (bill_id)
left join latest_payroll using (bill_id)
{{ touched }}
