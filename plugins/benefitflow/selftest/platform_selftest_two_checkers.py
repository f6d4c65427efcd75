"""The platform self-test approved by two distinct checkers."""

from __future__ import annotations

from dataclasses import replace

from benefitflow.selftest import platform_selftest
from benefitflow.workflows.declaration import Approval

# The same self-test under the `distinct` policy (its declaration: two distinct checkers): proves
# that a policy needing N checkers asks them one after the other and never counts anyone twice.
WORKFLOW = replace(
    platform_selftest.WORKFLOW,
    approve=Approval(group="RegistryCheckers", checkers=2),
    dag_id="platform_selftest_two_checkers",
    operation="selftest_two_checkers",
    doc_md="""
### Platform self-test with two distinct checkers

The platform self-test (`code,label,amount`) under the approval policy `distinct` with
`checkers: 2` — what `approval_groups.yaml` can require of any operation (e.g. a payroll):

1. **intake**, 2. **validate**, 3. **propose** — as in `platform_selftest`.
4. **approve_1** — a member of `RegistryCheckers` other than you approves (or rejects: the run
   stops there). **approve** — another member, neither you nor the first checker, decides.
   Each approval is in the audit trail; the decision names both checkers.
5. **commit** — appended to `ledger.selftest_records`; refused unless two distinct checkers approved.
6. **publish** — dbt rebuilds `registry.selftest_records` and the marts.

Parameters: `file` (in the inbox), `on_invalid_rows` (`reject_file` or `skip_invalid_rows`).
""",
)
