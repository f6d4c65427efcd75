-- Every payroll: waiting for approval or rejected (a request, read as it is now), or approved (the
-- ledger, through approved_payrolls). A view: a payroll request waiting for a checker, or rejected,
-- shows at once, with no commit and so no publish behind it; an approved one shows from its commit,
-- with its bills and totals once the publish that follows has rebuilt approved_payrolls.
{{ config(materialized='view') }}

with requested as (
    select
        null::bigint as payroll_id,
        requests.document ->> 'payroll' as payroll_name,
        requests.document ->> 'cycle' as cycle_code,
        requests.document ->> 'plan' as plan_code,
        requests.document ->> 'payment_point' as payment_point,
        requests.request_id,
        case requests.status
            when 'WAITING_FOR_APPROVAL' then 'PENDING_APPROVAL'
            when 'REJECTED' then 'REJECTED'
            else 'APPROVED_FOR_PAYMENT'
        end as status,
        null::timestamptz as approved_at
    from {{ ref('stg_intake__requests') }} as requests
    where
        requests.kind = 'payroll'
        and (
            requests.status in ('WAITING_FOR_APPROVAL', 'REJECTED')
            or (requests.status = 'APPLIED' and not exists (
                select 1 from {{ ref('approved_payrolls') }} as approved
                where approved.request_id = requests.request_id
            ))
        )
)

select
    payroll_id,
    payroll_name,
    cycle_code,
    plan_code,
    payment_point,
    request_id,
    status,
    approved_at,
    bills,
    total_amount,
    bills_paid,
    amount_paid,
    bills_failed,
    amount_failed
from {{ ref('approved_payrolls') }}
union all
select requested.*, 0, 0, 0, 0, 0, 0
from requested
