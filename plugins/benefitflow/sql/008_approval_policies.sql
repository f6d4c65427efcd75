-- Approval policies: an operation may need N distinct checkers (none of them the maker) instead of
-- any one. Each approval before the last is an audit event `<operation>.approval_given`; the
-- decision row, written at the last one, names the final checker and the others who approved, and
-- the database refuses an approval with fewer distinct checkers than the policy required.
-- Runs as benefitflow_owner. Adding columns with constant defaults rewrites nothing, so the
-- append-only trigger is not involved and every existing decision reads as "one checker needed".

ALTER TABLE ledger.decisions
    ADD COLUMN required_approvals smallint NOT NULL DEFAULT 1 CHECK (required_approvals BETWEEN 1 AND 10),
    ADD COLUMN other_approvers    text[]   NOT NULL DEFAULT '{}';

COMMENT ON COLUMN ledger.decisions.required_approvals IS
    'Distinct checkers (none the maker) the operation''s policy required for an approval.';
COMMENT ON COLUMN ledger.decisions.other_approvers IS
    'Checkers who approved this run before the deciding checker (empty under policy "any").';

CREATE FUNCTION ledger.approved_by_distinct_checkers(
    maker text, checker text, other_approvers text[], required_approvals smallint
) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT checker IS NOT NULL
       AND NOT (maker = ANY (other_approvers))
       AND (SELECT count(DISTINCT approver) FROM unnest(array_append(other_approvers, checker)) AS approver)
           = 1 + cardinality(other_approvers)
       AND 1 + cardinality(other_approvers) >= required_approvals
$$;

ALTER TABLE ledger.decisions ADD CONSTRAINT decision_approved_by_enough_distinct_checkers
    CHECK (outcome <> 'APPROVED'
           OR ledger.approved_by_distinct_checkers(maker, checker, other_approvers, required_approvals));
