"""`python -m benefitflow.platform.cli provision-airflow|verify-audit|finish-files`: what a deployment runs.

provision-airflow: docker-compose's airflow-init (settings from the environment). verify-audit:
the audit chain and the ledger's references (BENEFITFLOW_DATABASE_URL). finish-files (as the task user: the outbox
is the tasks'; `make up` and compose's airflow-init run it): every committed payroll's file finished from the ledger
and abandoned `.partial` files removed (finish-payroll-files does only this, and so does each payments workflow), and
archived originals no upload records removed. The one-machine stack's up, down, status and rebuild are development
tools: `make up` (benefitflow_dev.cli, in devtools/).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing

import psycopg2

from benefitflow.core import audit

DEVELOPMENT_COMMANDS = ("up", "down", "status", "rebuild")
# The lines of finish-files (Airflow may print its own as it loads).
PAYROLL_FILES_REPORT = "payroll files: "
UPLOADS_REPORT = "uploads: "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benefitflow")
    parser.add_argument("command", choices=["provision-airflow", "verify-audit", "finish-files", "finish-payroll-files",
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
    if args.command in ("finish-files", "finish-payroll-files"):
        from benefitflow.core import config
        from benefitflow.payments.payroll import finish_payroll_files
        from benefitflow.workflows.inputs import remove_unrecorded_originals

        for done in finish_payroll_files():
            print(f"{PAYROLL_FILES_REPORT}{done}")
        if args.command == "finish-files":
            for done in remove_unrecorded_originals(config.outbox_folder("uploads")):
                print(f"{UPLOADS_REPORT}{done}")
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
