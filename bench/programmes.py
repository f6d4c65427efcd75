"""Enrolment: a plan defined and everyone a two-condition filter selects enrolled."""

from __future__ import annotations

import uuid

from bench.report import PeakMemory, Stages, print_table
from bench.settings import CHECKER, ENTITLEMENT, MAKER, PLAN


def bench_enrolment(memory: PeakMemory) -> None:
    from benefitflow.core import db
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
    from benefitflow.workflows.direct import run_steps
    from benefitflow_dev.synthetic import PLACES_BY_REGION

    regions = list(PLACES_BY_REGION)
    criteria = {"all": [{"field": "age", "op": ">=", "value": 0}, {"field": "region", "op": "in", "value": regions}]}
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM registry.individuals")
        registry_size = int(cur.fetchone()[0])
    plan = {"code": PLAN, "name": "Bench plan", "type": "INDIVIDUAL", "valid_from": "2026-01-01",
            "currency": "KES", "entitlement": ENTITLEMENT}
    run_steps(DEFINE, options={"plan": plan}, maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex)
    print(f"\nbenefitflow bench: enrolment into an INDIVIDUAL plan of a registry of {registry_size:,} individuals, "
          f"filter: age >= 0 and region in ({', '.join(regions)})")
    stages = Stages(memory)
    result = run_steps(ENROLMENT, options={"plan": PLAN, "target_status": "ACTIVE", "criteria": criteria},
                       maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex, on_step=stages)
    print_table(stages.timings, result["commit"]["rows"], "whole enrolment (excl. approval)")
    proposal = result["proposal"]
    print(f"  outcome: {proposal['matching']:,} matching, {proposal['would_be_added']:,} enrolled ACTIVE")
