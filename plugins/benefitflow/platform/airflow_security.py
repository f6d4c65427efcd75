"""Airflow roles (= user groups) and demo users, kept in step with this file on every `make up`.

Run inside the Airflow environment: `python -m benefitflow.platform.airflow_security USERS.json`
where the JSON maps username -> {"password": ..., "roles": [...]}.

| role              | may                                                                      |
|-------------------|--------------------------------------------------------------------------|
| Maker             | trigger workflows, read runs, logs, XComs and reports; not answer        |
|                   | approvals, nor clear, mark, delete or pause runs, tasks or DAGs          |
| DataEngineer      | what a Maker may, plus clear and mark runs and task instances (retry)    |
| RegistryCheckers  | answer approval requests; read; not trigger runs                          |
| ProgrammeCheckers | same, for plans, enrolment and beneficiary statuses                       |
| PaymentCheckers   | same, for payment operations                                              |
| GrievanceCheckers | same, for grievance imports and status changes                            |
| Viewer, Admin     | Airflow's own                                                             |

FAB asks for DAG `can_edit` to trigger and to answer, and that alone also lets one pause DAGs:
`benefitflow.platform.auth_manager` (the configured auth manager) refuses writes to runs and
tasks without `Run Operations`, and to DAGs themselves without `DAG Administration` (Admin).
No role here holds `can_delete` on anything, nor variables, connections, pools or asset events.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import closing
from pathlib import Path

from psycopg2 import sql

CHECKER_ROLES = ("RegistryCheckers", "ProgrammeCheckers", "PaymentCheckers", "GrievanceCheckers")
ROLES = ("Maker", "DataEngineer", *CHECKER_ROLES)


def role_permissions(sm) -> dict[str, set[tuple[str, str]]]:
    from airflow.providers.fab.www.security import permissions as p

    from benefitflow.platform.auth_manager import RUN_OPERATIONS

    viewer = set(sm.VIEWER_PERMISSIONS)
    # DAG can_edit is what FAB asks of any write under a DAG, trigger and answer included; the
    # auth manager keeps it from meaning "pause" or "clear" for these roles.
    # Plugins can_read: the UI learns of the Upload page (a plugin's view) from the plugin list.
    maker = viewer | {(p.ACTION_CAN_CREATE, p.RESOURCE_DAG_RUN), (p.ACTION_CAN_EDIT, p.RESOURCE_DAG),
                      (p.ACTION_CAN_READ, p.RESOURCE_PLUGIN)}
    engineer = maker | {(p.ACTION_CAN_EDIT, p.RESOURCE_DAG_RUN), (p.ACTION_CAN_EDIT, p.RESOURCE_TASK_INSTANCE),
                        RUN_OPERATIONS}
    checker = viewer | {(p.ACTION_CAN_EDIT, p.RESOURCE_HITL_DETAIL), (p.ACTION_CAN_EDIT, p.RESOURCE_DAG),
                        (p.ACTION_CAN_ACCESS_MENU, p.RESOURCE_HITL_DETAIL)}
    return {"Maker": maker, "DataEngineer": engineer, **{role: set(checker) for role in CHECKER_ROLES}}


def sync_roles(sm) -> None:
    """Make each platform role hold exactly its permissions (idempotent: `make up` runs it every start)."""
    from benefitflow.platform.auth_manager import DAG_ADMINISTRATION, RUN_OPERATIONS

    for name, wanted in role_permissions(sm).items():
        role = sm.find_role(name) or sm.add_role(name)
        current = {(perm.action.name, perm.resource.name) for perm in role.permissions}
        for action, resource in wanted - current:
            sm.add_permission_to_role(role, sm.create_permission(action, resource))
        for action, resource in current - wanted:
            sm.remove_permission_from_role(role, sm.get_permission(action, resource))
    # FAB's sync_roles gives Admin every non-DAG permission that exists, but ran before these did.
    admin = sm.find_role("Admin")
    for action, resource in (RUN_OPERATIONS, DAG_ADMINISTRATION):
        sm.add_permission_to_role(admin, sm.create_permission(action, resource))


def sync_users(sm, users: dict[str, dict]) -> None:
    for username, entry in users.items():
        roles = [sm.find_role(name) for name in entry["roles"]]
        user = sm.find_user(username=username)
        if user is None:
            sm.add_user(username=username, first_name=username, last_name="(demo)",
                        email=f"{username}@benefitflow.invalid", role=roles, password=entry["password"])
            continue
        user.roles = roles
        user.active = True
        sm.update_user(user)
        sm.reset_password(user.id, entry["password"])


def provision(users: dict[str, dict]) -> None:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        sm.sync_roles()
        sync_roles(sm)
        sync_users(sm, users)
    print(f"roles {', '.join(ROLES)} and {len(users)} users in place")


def provision_from_environment() -> None:
    """For deployments on an external PostgreSQL (docker-compose): everything from env variables.

    BENEFITFLOW_OWNER_DATABASE_URL migrates the platform schema; Airflow's own connection
    (its owner) grants the directory reader; AIRFLOW_ADMIN_USERNAME/PASSWORD is the first admin.
    """
    import psycopg2

    from benefitflow.core import db
    from benefitflow.platform.readers import grant_marts

    print("migrations applied:", db.migrate(os.environ["BENEFITFLOW_OWNER_DATABASE_URL"]) or "none new")
    with db.transaction(os.environ["BENEFITFLOW_OWNER_DATABASE_URL"]) as cur:  # Superset's logins and their regions
        unprotected = grant_marts(cur)
    if unprotected:
        print("marts not readable by Superset until dbt builds them with row-level security:", ", ".join(unprotected))
    from airflow.configuration import conf

    airflow_url = conf.get("database", "sql_alchemy_conn").replace("+psycopg2", "")
    with closing(psycopg2.connect(airflow_url)) as conn, conn, conn.cursor() as cur:
        grant_airflow_directory(cur)
    provision({os.environ["AIRFLOW_ADMIN_USERNAME"]: {"password": os.environ["AIRFLOW_ADMIN_PASSWORD"],
                                                       "roles": ["Admin"]}})


def main(users_file: str) -> None:
    provision(json.loads(Path(users_file).read_text()))



AIRFLOW_DIRECTORY_TABLES = ("ab_role", "ab_user_role", "hitl_detail", "hitl_detail_history", "task_instance_history")
# Of the users, who they are and whether they are active: never a password hash, e-mail or login history.
AIRFLOW_DIRECTORY_USER_COLUMNS = ("id", "username", "active")


def grant_airflow_directory(cur) -> None:
    """After Airflow's migration: the reader may SELECT users' ids and names, roles and earlier HITL answers only.

    `cur` is on the airflow database, as its owner or a superuser.
    """
    for table in AIRFLOW_DIRECTORY_TABLES:
        cur.execute(sql.SQL("GRANT SELECT ON public.{} TO airflow_reader").format(sql.Identifier(table)))
    cur.execute("REVOKE SELECT ON public.ab_user FROM airflow_reader")  # a whole-table grant of earlier versions
    cur.execute(sql.SQL("GRANT SELECT ({}) ON public.ab_user TO airflow_reader").format(
        sql.SQL(", ").join(map(sql.Identifier, AIRFLOW_DIRECTORY_USER_COLUMNS))))


if __name__ == "__main__":
    main(sys.argv[1])
