"""Grievances: one ticket per 20 people, imported by the grievances_import workflow."""

from __future__ import annotations

import uuid
from pathlib import Path

from bench.report import PeakMemory, Stages, print_table
from bench.settings import CHECKER, MAKER, PEOPLE_PER_GRIEVANCE, PLAN, ROWS


def bench_grievances(memory: PeakMemory) -> None:
    from benefitflow.core import config
    from benefitflow.grievances.grievances_import import WORKFLOW as GRIEVANCES
    from benefitflow.workflows.direct import run_steps

    tickets = max(ROWS // PEOPLE_PER_GRIEVANCE, 100)
    path = config.inbox() / f"bench-grievances-{uuid.uuid4().hex[:8]}.csv"
    write_grievances_file(path, tickets)
    print(f"\nbenefitflow bench: grievances import of {tickets:,} tickets from the registry's people "
          f"and the plan's beneficiaries")
    stages = Stages(memory)
    result = run_steps(GRIEVANCES, file=path.name, options={"on_invalid_rows": "reject_file"}, maker=MAKER,
                       checker=CHECKER, run_id=uuid.uuid4().hex, on_step=stages)
    print_table(stages.timings, tickets, "grievances import (excl. approval)")
    print(f"  outcome: {result['commit']['rows']:,} tickets recorded, "
          f"{result['proposal']['invalid_rows']:,} invalid rows")


def write_grievances_file(path: Path, tickets: int) -> None:
    """Streamed out of PostgreSQL with COPY: every tenth ticket is reported by a beneficiary of the plan."""
    from psycopg2 import sql

    from benefitflow.core import db
    from benefitflow.grievances.grievances_import import CHANNELS, PRIORITIES, categories

    category_codes = sorted(categories())
    query = sql.SQL("""
        COPY (
            SELECT people.individual_id,
                   CASE WHEN people.n % 10 = 0 THEN beneficiaries.beneficiary_id END AS beneficiary_id,
                   'Bench ticket ' || people.n AS title, '' AS description,
                   ({categories})[(1 + people.n % {category_count})::int] AS category,
                   ({channels})[(1 + people.n % {channel_count})::int] AS channel,
                   ({priorities})[(1 + people.n % {priority_count})::int] AS priority,
                   date '2026-02-01' + (people.n % 28)::int AS incident_date,
                   date '2026-03-01' + (people.n % 28)::int AS received_on
            FROM (SELECT individual_id, row_number() OVER (ORDER BY individual_id) AS n
                  FROM registry.individuals ORDER BY individual_id LIMIT {tickets}) AS people
            LEFT JOIN programmes.beneficiaries AS beneficiaries
                   ON beneficiaries.individual_id = people.individual_id AND beneficiaries.plan_code = {plan}
        ) TO STDOUT WITH (FORMAT csv, HEADER true)""").format(
        categories=sql.Literal(category_codes), category_count=sql.Literal(len(category_codes)),
        channels=sql.Literal(list(CHANNELS)), channel_count=sql.Literal(len(CHANNELS)),
        priorities=sql.Literal(list(PRIORITIES)), priority_count=sql.Literal(len(PRIORITIES)),
        tickets=sql.Literal(tickets), plan=sql.Literal(PLAN))
    with db.transaction() as cur, path.open("w", encoding="utf-8") as handle:
        cur.copy_expert(query.as_string(cur), handle)
