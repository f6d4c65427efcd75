"""Superset roles, users and the asset bundle, run inside the Superset environment:

    BENEFITFLOW_READER_DATABASE_URL=postgresql://superset_reader:...@host:port/benefitflow \
        python superset/provision.py [USERS.json]

`make up` runs it after `superset init`, and so does docker-compose's `superset-init`. The
bundle (every YAML under superset/assets, the database's URL and password taken from
BENEFITFLOW_READER_DATABASE_URL, so none is in the repository) is imported with every
database, dataset, chart and dashboard overwritten, so a changed YAML reaches an existing
installation too (`superset import-dashboards` overwrites dashboards only).

USERS.json maps username -> {"password": ..., "roles": [...]} (the demo users; a deployment
without it adds its users in Superset's UI). The `Manager` role may use dashboards and explore
the datasets of the benefitflow marts database only. Which regions a manager sees is a second
role beside `Manager` (superset/regions.json): `All regions`, or one regional role (e.g.
`Region North`). A manager with neither sees no row of a mart with a region (fail closed).
PostgreSQL enforces it (superset_config.DB_CONNECTION_MUTATOR connects as the region's login);
the regional roles' Superset row-level security filters made here are a second layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ASSETS_DIR = Path(__file__).with_name("assets")
READER_URL_VARIABLE = "BENEFITFLOW_READER_DATABASE_URL"
LOGINS_KEY_VARIABLE = "BENEFITFLOW_READER_LOGINS_KEY"

MANAGER_ROLE = "Manager"
MARTS_DATABASE = "benefitflow_marts"
REGIONS = json.loads((Path(__file__).with_name("regions.json")).read_text())
ALL_REGIONS_ROLE = REGIONS["all_regions"]["superset_role"]
# Regional role -> the regions (as the registry spells them) its members see.
REGIONAL_ROLES = {entry["superset_role"]: entry["regions"] for entry in REGIONS["regional"]}
REGION_COLUMN = "region"


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


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sync_regional_roles(sm, db) -> None:
    """The all-regions role (no filter; it adds no permission either) and one role and one Regular row-level
    security filter per regional role, on every marts dataset with a region column.

    Run again after each import: a dataset that gained a region column is covered from then on.
    """
    from superset.connectors.sqla.models import RowLevelSecurityFilter, SqlaTable
    from superset.models.core import Database
    from superset.utils.core import RowLevelSecurityFilterType

    regional = [
        dataset for dataset in db.session.query(SqlaTable).join(Database)
        .filter(Database.database_name == MARTS_DATABASE, SqlaTable.schema == "marts").all()
        if any(column.column_name == REGION_COLUMN for column in dataset.columns)
    ]
    sm.find_role(ALL_REGIONS_ROLE) or sm.add_role(ALL_REGIONS_ROLE)
    for role_name, regions in REGIONAL_ROLES.items():
        role = sm.find_role(role_name) or sm.add_role(role_name)
        name = f"{role_name}: {REGION_COLUMN} in {', '.join(regions)}"
        # Earlier installations named a one-region filter "<role>: region = <region>": renamed, not duplicated.
        rls = db.session.query(RowLevelSecurityFilter).filter(RowLevelSecurityFilter.name.in_(
            [name, *(f"{role_name}: {REGION_COLUMN} = {region}" for region in regions)])).first()
        if rls is None:
            rls = RowLevelSecurityFilter(name=name)
            db.session.add(rls)
        rls.name = name
        rls.description = f"Members of {role_name} see only the rows of {', '.join(regions)} in the marts."
        rls.filter_type = RowLevelSecurityFilterType.REGULAR
        rls.group_key = REGION_COLUMN
        rls.clause = f"{REGION_COLUMN} IN ({', '.join(map(sql_literal, regions))})"
        rls.roles = [role]
        rls.tables = regional
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


def stored_connection_url(reader_url: str, logins_key: str) -> str:
    """The marts connection as Superset stores it: the no-region login, at the readers' host and database.

    Fail closed: every query is narrowed to the user's regions by superset_config.DB_CONNECTION_MUTATOR,
    which widens the connection to the login of the user's regions. A query it does not reach (a mutator
    not loaded, a job without a user) reads no regional row.
    """
    parts = urlsplit(reader_url)
    login = REGIONS["no_region"]["login"]
    password = hashlib.sha256(f"{logins_key}:{login}".encode()).hexdigest()  # as benefitflow.platform.readers
    return urlunsplit(parts._replace(netloc=f"{login}:{password}@{parts.hostname}:{parts.port or 5432}"))


def bundle_from_assets(connection_url: str) -> dict[str, str]:
    """The asset bundle as Superset imports it (path -> YAML), with the marts connection's URL and password."""
    import yaml

    bundle = {}
    for path in sorted(ASSETS_DIR.rglob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if path.parent.name == "databases":
            document["sqlalchemy_uri"] = connection_url
            document["password"] = unquote(urlsplit(connection_url).password or "")
        bundle[path.relative_to(ASSETS_DIR).as_posix()] = yaml.safe_dump(document, sort_keys=False)
    return bundle


def import_assets(sm, bundle: dict[str, str]) -> None:
    from superset.commands.importers.v1.assets import ImportAssetsCommand
    from superset.utils.core import override_user

    with override_user(sm.find_user(username=os.environ.get("SUPERSET_ADMIN_USERNAME", "admin"))):
        ImportAssetsCommand(bundle).run()


def main(users_file: str | None) -> None:
    reader_url = os.environ.get(READER_URL_VARIABLE)
    if not reader_url:
        sys.exit(f"{READER_URL_VARIABLE} is not set: the marts database connection needs the read-only user's URL")
    logins_key = os.environ.get(LOGINS_KEY_VARIABLE)
    if not logins_key:
        sys.exit(f"{LOGINS_KEY_VARIABLE} is not set: the marts connection is stored as the no-region login")
    bundle = bundle_from_assets(stored_connection_url(reader_url, logins_key))
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import db, security_manager

        # Roles before users (users name them), users before assets (imported as admin), and the roles'
        # database access and row-level security again once the assets' database and datasets exist.
        sync_manager_role(security_manager, db)
        sync_regional_roles(security_manager, db)
        if users_file:
            sync_users(security_manager, db, json.loads(Path(users_file).read_text()))
        import_assets(security_manager, bundle)
        sync_manager_role(security_manager, db)
        sync_regional_roles(security_manager, db)
    print("Superset roles, users, assets and row-level security in place")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
