-- Every approval decision with the time the checker took (null when the request time is unknown). Not the
-- checker's reason: free text, it may name a person, and this mart has no region (every manager reads it).
select
    decisions.decision_id,
    decisions.operation,
    decisions.dag_id,
    decisions.run_id,
    decisions.upload_id,
    decisions.maker,
    decisions.checker,
    decisions.checker_group,
    decisions.policy,
    decisions.required_approvals,
    -- Everyone who approved, in order, the deciding checker last (one name under policy "any").
    case when decisions.outcome = 'APPROVED'
        then concat_ws(', ', nullif(decisions.other_approvers, ''), decisions.checker)
    end as approved_by,
    decisions.outcome,
    decisions.requested_at,
    decisions.decided_at,
    case
        when decisions.requested_at is not null
        then round(extract(epoch from decisions.decided_at - decisions.requested_at) / 3600.0, 2)::numeric(12, 2)
    end as hours_to_decision,
    commits.commit_id is not null as committed
from {{ ref('stg_ledger__decisions') }} as decisions
left join {{ ref('stg_ledger__commits') }} as commits using (decision_id)
