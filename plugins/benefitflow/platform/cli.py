"""`python -m benefitflow.platform.cli up|down|status|rebuild|verify-audit` (what `make up` and friends call)."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing

import psycopg2

from benefitflow import audit
from benefitflow.platform import stack
from benefitflow.platform.instance import DEMO_USERS, Instance


def _print_welcome(instance: Instance) -> None:
    print()
    print(f"Airflow   {instance.airflow_url}   (data engineers, makers, checkers)")
    print(f"Superset  {instance.superset_url}   (managers)")
    print()
    print("Demo users (also in .local/credentials.json):")
    for name, roles in DEMO_USERS.items():
        where = ", ".join(roles) if roles else "Superset"
        print(f"  {name:<16} {instance.user_password(name):<20} {where}")
    print()
    print("Connection settings for scripts: source .local/env")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benefitflow")
    parser.add_argument("command", choices=["up", "down", "status", "rebuild", "verify-audit", "provision-airflow"])
    parser.add_argument("--no-superset", action="store_true", help="up: skip Superset")
    args = parser.parse_args(argv)
    if args.command == "provision-airflow":  # docker-compose's airflow-init: settings from the environment
        from benefitflow.platform.airflow_security import provision_from_environment

        provision_from_environment()
        return 0
    if args.command == "verify-audit":  # a script's own settings (.local/env) win over the installation's
        return verify_audit(os.environ.get("BENEFITFLOW_DATABASE_URL") or Instance.default().app_database_url)
    instance = Instance.default()
    if args.command == "up":
        stack.up(instance, with_superset=not args.no_superset)
        _print_welcome(instance)
    elif args.command == "rebuild":
        stack.rebuild(instance)
    elif args.command == "down":
        stack.stop_all(instance)
    elif args.command == "status":
        report = stack.status(instance)
        width = max(map(len, report))
        for name, state in report.items():
            print(f"{name:<{width}}  {state}")
        return 0 if all(state != "stopped" for state in report.values()) else 3
    return 0


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
