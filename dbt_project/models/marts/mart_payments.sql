-- One row per bill for Superset: plan, cycle, status, amounts due and paid, payroll, and where the
-- recipient lives. No names or national ids (the payments export has them, audited).
{{ config(materialized='incremental', unique_key='bill_code', incremental_strategy='delete+insert',
          on_schema_change='fail', pre_hook="{{ take_in_commits() }}",
          indexes=[{'columns': ['bill_code'], 'unique': True}]) }}
-- Incremental (macros/incremental_state.sql): a run rebuilds the bills its new commits touched, and the
-- bills of every household and person they changed (the recipient's region, location and sex).
-- depends_on: {{ ref('stg_ledger__bills') }}, {{ ref('stg_ledger__bill_events') }}, {{ ref('stg_ledger__payroll_bills') }}
-- depends_on: {{ ref('stg_ledger__duplicate_reviews') }}
-- depends_on: {{ ref('stg_ledger__individual_versions') }}, {{ ref('stg_ledger__households') }}
{%- if is_incremental() %}
-- Each way a bill's row can change, as a list of ids found through an index of its own.
with touched as (
    {{ bills_touched_by_new_commits() }}
    union
    select bill_id from {{ ref('bills') }}
    where individual_id in ({{ touched_by_new_commits(ref('stg_ledger__individual_versions'), 'individual_id') }})
    union
    select bill_id from {{ ref('bills') }}
    where household_code in ({{ households_touched_by_new_commits() }})
)
{%- endif %}

select
    bills.bill_code,
    bills.plan_code,
    bills.cycle_code,
    cycles.period_start,
    cycles.period_end,
    bills.status,
    {{ amount_due('bills') }} as amount_due,
    bills.amount as amount_billed,
    coalesce(bills.amount_paid, 0) as amount_paid,
    bills.currency,
    bills.held_at_billing,
    bills.paid_on,
    bills.receipt,
    bills.payroll_name,
    payrolls.payment_point,
    bills.beneficiary_id,
    recipients.individual_id as recipient_id,
    bills.household_code,
    recipients.sex as recipient_sex,
    recipients.region,
    recipients.location_code,
    bills.billed_at
from {{ ref('bills') }} as bills
join {{ ref('stg_ledger__payment_cycles') }} as cycles using (cycle_code, plan_code)
left join {{ ref('households') }} as households using (household_code)
left join {{ ref('individuals') }} as recipients
    on recipients.individual_id
        = {{ recipient('coalesce(bills.individual_id, bills.paid_to_individual_id)', 'households') }}
left join {{ ref('stg_ledger__payrolls') }} as payrolls using (payroll_id)
{%- if is_incremental() %}
where bills.bill_id in (select bill_id from touched)
{%- endif %}
