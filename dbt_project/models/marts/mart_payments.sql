-- One row per bill for Superset: plan, cycle, status, amounts due and paid, payroll, and where the
-- recipient lives. No names or national ids (the payments export has them, audited).
select
    bills.bill_code,
    bills.plan_code,
    bills.cycle_code,
    cycles.period_start,
    cycles.period_end,
    bills.status,
    bills.amount as amount_due,
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
        = coalesce(bills.individual_id, households.primary_recipient_id, households.head_individual_id)
left join {{ ref('stg_ledger__payrolls') }} as payrolls using (payroll_id)
