"""`python -m benefitflow_dev.cli up|down|status|rebuild|verify-audit`: what `make up` and friends call.

The one-machine stack (project-local PostgreSQL, Airflow, Superset, demo data); with `devtools` and
`plugins` on PYTHONPATH, as the Makefile sets them.
"""

from __future__ import annotations

import argparse
import os
import sys

from benefitflow.platform.cli import verify_audit
from benefitflow_dev import stack
from benefitflow_dev.instance import DEMO_USERS, Instance


def _print_welcome(instance: Instance) -> None:
    print()
    print(f"Airflow   {instance.airflow_url}   (data engineers, makers, checkers)")
    print(f"Superset  {instance.superset_url}   (managers)")
    print(f"Registry API {instance.registry_api_url}   (partner systems, DCI; client secrets in "
          ".local/registry-api-clients.json)")
    print()
    print("Demo users (also in .local/credentials.json):")
    for name, roles in DEMO_USERS.items():
        where = ", ".join(roles) if roles else "Superset"
        print(f"  {name:<16} {instance.user_password(name):<20} {where}")
    print()
    print("Connection settings for scripts: source .local/env")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benefitflow")
    parser.add_argument("command", choices=["up", "down", "status", "rebuild", "verify-audit"])
    parser.add_argument("--no-superset", action="store_true", help="up: skip Superset")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
