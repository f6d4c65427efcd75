"""Superset roles and users, run inside the Superset environment:

    python superset/provision.py USERS.json

USERS.json maps username -> {"password": ..., "roles": [...]}. The `Manager` role may use
dashboards and explore the datasets of the benefitflow marts database only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MANAGER_ROLE = "Manager"
MARTS_DATABASE = "benefitflow_marts"


def sync_manager_role(sm, db) -> None:
    from superset.models.core import Database

    gamma = sm.find_role("Gamma")
    role = sm.find_role(MANAGER_ROLE) or sm.add_role(MANAGER_ROLE)
    wanted = list(gamma.permissions)
    database = db.session.query(Database).filter_by(database_name=MARTS_DATABASE).one_or_none()
    if database is not None:
        wanted.append(sm.add_permission_view_menu("database_access", database.perm))
        wanted.append(sm.add_permission_view_menu("schema_access", f"[{MARTS_DATABASE}].[marts]"))
    role.permissions = wanted
    db.session.commit()


def sync_users(sm, db, users: dict[str, dict]) -> None:
    for username, entry in users.items():
        roles = [sm.find_role(name) for name in entry["roles"]]
        user = sm.find_user(username=username)
        if user is None:
            sm.add_user(username, username, "(demo)", f"{username}@benefitflow.invalid", roles, entry["password"])
            continue
        user.roles = roles
        user.active = True
        db.session.commit()
        sm.reset_password(user.id, entry["password"])


def main(users_file: str) -> None:
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import db, security_manager

        sync_manager_role(security_manager, db)
        sync_users(security_manager, db, json.loads(Path(users_file).read_text()))
    print("Superset roles and users in place")


if __name__ == "__main__":
    main(sys.argv[1])
