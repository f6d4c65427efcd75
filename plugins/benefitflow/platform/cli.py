"""`python -m benefitflow.platform.cli provision-airflow|verify-audit|finish-payroll-files`: what a deployment runs.

provision-airflow: docker-compose's airflow-init (settings from the environment). verify-audit:
the audit chain and the ledger's references (BENEFITFLOW_DATABASE_URL). finish-payroll-files: every
committed payroll's file finished from the ledger, abandoned `.partial` files removed (as the task
user: the outbox is the tasks'; `make up` runs it, and so does each payments workflow). The one-machine stack's
up, down, status and rebuild are development tools: `make up` (benefitflow_dev.cli, in devtools/).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing

import psycopg2

from benefitflow.core import audit

DEVELOPMENT_COMMANDS = ("up", "down", "status", "rebuild")
PAYROLL_FILES_REPORT = "payroll files: "  # finish-payroll-files' lines (Airflow may print its own as it loads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benefitflow")
    parser.add_argument("command", choices=["provision-airflow", "verify-audit", "finish-payroll-files",
                                            *DEVELOPMENT_COMMANDS])
    parser.add_argument("--no-superset", action="store_true", help=argparse.SUPPRESS)  # `up`'s, refused below
    args = parser.parse_args(argv)
    if args.command in DEVELOPMENT_COMMANDS:
        print(f"`{args.command}` moved to the development tools: run `make {args.command}` (or "
              f"`PYTHONPATH=plugins:devtools python -m benefitflow_dev.cli {args.command}`)", file=sys.stderr)
        return 2
    if args.command == "provision-airflow":
        from benefitflow.platform.airflow_security import provision_from_environment

        provision_from_environment()
        return 0
    if not (url := os.environ.get("BENEFITFLOW_DATABASE_URL")):
        print(f"{args.command} needs BENEFITFLOW_DATABASE_URL (a one-machine installation: source .local/env)",
              file=sys.stderr)
        return 2
    if args.command == "finish-payroll-files":
        from benefitflow.payments.payroll import finish_payroll_files

        for done in finish_payroll_files():
            print(f"{PAYROLL_FILES_REPORT}{done}")
        return 0
    return verify_audit(url)


def verify_audit(database_url: str) -> int:
    """Exit status 0 when the audit chain and the ledger's references verify, 1 naming what is broken otherwise."""
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ledger.audit_events")
        count = cur.fetchone()[0]
        broken = audit.first_break(cur)
        dangling = audit.reference_breaks(cur)
    if broken:
        print(f"Audit chain BROKEN at {broken}", file=sys.stderr)
    for line in dangling:
        print(f"Reference BROKEN: {line}", file=sys.stderr)
    if broken or dangling:
        return 1
    print(f"Audit chain intact: {count} events verified; every ledger and intake row's references hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
