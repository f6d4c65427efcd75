"""Superset: metadata database, roles and users, the asset bundle, the web server."""

from __future__ import annotations

import io
import json
import zipfile

import yaml

from benefitflow.platform import services
from benefitflow.platform.instance import PROJECT_ROOT, Instance
from benefitflow.platform.stack_tools import run

ASSETS_DIR = PROJECT_ROOT / "superset" / "assets"
# username -> Superset roles; a regional role (superset/provision.py) narrows the marts to one region.
SUPERSET_USERS = {"admin": ["Admin"], "manager": ["Manager"], "manager_north": ["Manager", "Region North"]}


def _superset(instance: Instance, *args: str, what: str) -> None:
    run([str(services.SUPERSET_BIN / "superset"), *args], instance.superset_env(), what)


def bundle_zip(instance: Instance) -> bytes:
    """The asset bundle as Superset imports it, with the read-only user's URL and password filled in."""
    buffer = io.BytesIO()
    reader_url = instance.database_url("superset_reader", "benefitflow")
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(ASSETS_DIR.rglob("*.yaml")):
            document = yaml.safe_load(path.read_text())
            if path.parent.name == "databases":
                document["sqlalchemy_uri"] = reader_url
                document["password"] = instance.secrets["db_superset_reader"]
            archive.writestr(f"bundle/{path.relative_to(ASSETS_DIR)}", yaml.safe_dump(document, sort_keys=False))
    return buffer.getvalue()


def prepare(instance: Instance) -> None:
    instance.superset_home.mkdir(parents=True, exist_ok=True)
    _superset(instance, "db", "upgrade", what="superset db upgrade")
    marker = instance.superset_home / ".initialized"
    if not marker.exists():
        _superset(instance, "init", what="superset init")
        marker.touch()
    bundle = instance.run_dir / "superset-bundle.zip"
    bundle.write_bytes(bundle_zip(instance))
    bundle.chmod(0o600)
    users_file = instance.run_dir / "superset-users.json"
    users_file.write_text(json.dumps({
        name: {"password": instance.user_password(name), "roles": roles} for name, roles in SUPERSET_USERS.items()
    }))
    users_file.chmod(0o600)
    try:
        run([str(services.SUPERSET_BIN / "python"), str(PROJECT_ROOT / "superset" / "provision.py"), str(users_file),
             str(bundle)], instance.superset_env(), "Superset roles, users, assets and row-level security")
    finally:
        bundle.unlink(missing_ok=True)
        users_file.unlink(missing_ok=True)


def start(instance: Instance) -> None:
    for service in services.superset_services(instance):
        services.start(instance, service)
    services.wait_for_http(f"{instance.superset_url}/health", what="Superset")
