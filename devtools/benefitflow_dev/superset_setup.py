"""Superset: metadata database, roles and users, the asset bundle, the web server."""

from __future__ import annotations

import json

from benefitflow.core import file_store
from benefitflow_dev import services
from benefitflow_dev.instance import PROJECT_ROOT, Instance
from benefitflow_dev.stack_tools import run

ASSETS_DIR = PROJECT_ROOT / "superset" / "assets"  # imported by superset/provision.py
# username -> Superset roles; beside Manager, "All regions" or a regional role (superset/regions.json) says which
# regions' rows of the marts the manager sees (a Manager with neither sees none).
SUPERSET_USERS = {"admin": ["Admin"], "manager": ["Manager", "All regions"],
                  "manager_north": ["Manager", "Region North"]}


def _superset(instance: Instance, *args: str, what: str) -> None:
    run([str(services.SUPERSET_BIN / "superset"), *args], instance.superset_env(), what)


def prepare(instance: Instance) -> None:
    instance.superset_home.mkdir(parents=True, exist_ok=True)
    _superset(instance, "db", "upgrade", what="superset db upgrade")
    marker = instance.superset_home / ".initialized"
    if not marker.exists():
        _superset(instance, "init", what="superset init")
        marker.touch()
    users_file = instance.run_dir / "superset-users.json"
    file_store.write_secret(users_file, json.dumps({
        name: {"password": instance.user_password(name), "roles": roles} for name, roles in SUPERSET_USERS.items()
    }))
    try:
        run([str(services.SUPERSET_BIN / "python"), str(PROJECT_ROOT / "superset" / "provision.py"), str(users_file)],
            instance.superset_env(), "Superset roles, users, assets and row-level security")
    finally:
        users_file.unlink(missing_ok=True)


def start(instance: Instance) -> None:
    for service in services.superset_services(instance):
        services.start(instance, service)
    services.wait_for_http(f"{instance.superset_url}/health", what="Superset")
