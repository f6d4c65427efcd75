"""The Airflow roles and the auth manager's extra rule, without services (review C2).

The decisions are FAB's own `is_authorized_dag` plus ours, asked with the (method, entity) pairs
the REST routes ask (airflow/api_fastapi/core_api/routes/public/*.py); tests/e2e/test_permissions.py
checks the same against the running API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.providers.fab.auth_manager.security_manager.override import FabAirflowSecurityManagerOverride
from airflow.providers.fab.www.security import permissions as p

from benefitflow.platform.airflow_security import CHECKER_ROLES, ROLES, role_permissions, sync_roles
from benefitflow.platform.auth_manager import DAG_ADMINISTRATION, RUN_OPERATIONS, BenefitflowFabAuthManager

DAG = "platform_selftest"
# (method, access entity) as the routes ask them
CALLS: dict[str, tuple[str, DagAccessEntity | None]] = {
    "trigger": ("POST", DagAccessEntity.RUN),
    "answer approval": ("PUT", DagAccessEntity.HITL_DETAIL),
    "read run": ("GET", DagAccessEntity.RUN),
    "read task logs": ("GET", DagAccessEntity.TASK_LOGS),
    "read xcom": ("GET", DagAccessEntity.XCOM),
    "read approval": ("GET", DagAccessEntity.HITL_DETAIL),
    "clear/mark task instances": ("PUT", DagAccessEntity.TASK_INSTANCE),
    "clear/mark run": ("PUT", DagAccessEntity.RUN),
    "delete run": ("DELETE", DagAccessEntity.RUN),
    "delete task instance": ("DELETE", DagAccessEntity.TASK_INSTANCE),
    "write xcom": ("POST", DagAccessEntity.XCOM),
    "pause DAG": ("PUT", None),
    "delete DAG": ("DELETE", None),
}
READS = {"read run", "read task logs", "read xcom", "read approval"}
ALLOWED = {
    "Maker": READS | {"trigger"},
    "DataEngineer": READS | {"trigger", "clear/mark task instances", "clear/mark run"},
    **{role: READS | {"answer approval"} for role in CHECKER_ROLES},
}
FORBIDDEN_RESOURCES = (p.RESOURCE_VARIABLE, p.RESOURCE_CONNECTION, p.RESOURCE_POOL, "Assets")
WRITES = (p.ACTION_CAN_CREATE, p.ACTION_CAN_EDIT, p.ACTION_CAN_DELETE)

SM = SimpleNamespace(VIEWER_PERMISSIONS=FabAirflowSecurityManagerOverride.VIEWER_PERMISSIONS)


def user_with(perms: set[tuple[str, str]]) -> SimpleNamespace:
    return SimpleNamespace(perms=perms)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_exactly_its_calls(role: str) -> None:
    manager = BenefitflowFabAuthManager()
    user = user_with(role_permissions(SM)[role])
    allowed = {name for name, (method, entity) in CALLS.items()
               if manager.is_authorized_dag(method=method, access_entity=entity, user=user,  # type: ignore[arg-type]
                                            details=DagDetails(id=DAG))}
    assert allowed == ALLOWED[role]
    assert not manager.get_authorized_dag_ids(user=user, method="PUT")  # the bulk PATCH /dags list


@pytest.mark.parametrize("role", ROLES)
def test_no_role_deletes_or_touches_variables_connections_pools_or_assets(role: str) -> None:
    perms = role_permissions(SM)[role]
    assert not {(a, r) for a, r in perms if a == p.ACTION_CAN_DELETE}
    assert not {(a, r) for a, r in perms if r in FORBIDDEN_RESOURCES and a in WRITES}
    assert DAG_ADMINISTRATION not in perms


def test_maker_holds_no_run_or_task_edit_even_without_the_auth_manager() -> None:
    maker = role_permissions(SM)["Maker"]
    for resource in (p.RESOURCE_DAG_RUN, p.RESOURCE_TASK_INSTANCE):
        assert (p.ACTION_CAN_EDIT, resource) not in maker
    assert (p.ACTION_CAN_EDIT, p.RESOURCE_HITL_DETAIL) not in maker
    assert RUN_OPERATIONS not in maker
    assert role_permissions(SM)["Maker"] < role_permissions(SM)["DataEngineer"]


def test_plain_fab_alone_would_let_a_maker_pause() -> None:
    """Why the auth manager exists: FAB wants DAG can_edit to trigger, and that is all pausing needs."""
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

    maker = user_with(role_permissions(SM)["Maker"])
    assert FabAuthManager().is_authorized_dag(method="PUT", user=maker, details=DagDetails(id=DAG))
    assert not BenefitflowFabAuthManager().is_authorized_dag(method="PUT", user=maker, details=DagDetails(id=DAG))


def test_admin_may_everything_here() -> None:
    manager = BenefitflowFabAuthManager()
    admin = user_with(set(FabAirflowSecurityManagerOverride.ROLE_CONFIGS[-1]["perms"]) | {RUN_OPERATIONS,
                                                                                         DAG_ADMINISTRATION})
    for method, entity in CALLS.values():
        assert manager.is_authorized_dag(method=method, access_entity=entity, user=admin,  # type: ignore[arg-type]
                                         details=DagDetails(id=DAG))


# -- sync_roles against an in-memory security manager -----------------------------------------
@dataclass(frozen=True)
class Perm:
    action: SimpleNamespace
    resource: SimpleNamespace


@dataclass
class Role:
    name: str
    permissions: list[Perm] = field(default_factory=list)


@dataclass
class FakeSecurityManager:
    VIEWER_PERMISSIONS: list = field(default_factory=lambda: list(SM.VIEWER_PERMISSIONS))
    roles: dict[str, Role] = field(default_factory=lambda: {"Admin": Role("Admin")})
    perms: dict[tuple[str, str], Perm] = field(default_factory=dict)
    changes: int = 0

    def find_role(self, name: str) -> Role | None:
        return self.roles.get(name)

    def add_role(self, name: str) -> Role:
        self.changes += 1
        return self.roles.setdefault(name, Role(name))

    def create_permission(self, action: str, resource: str) -> Perm:
        key = (action, resource)
        return self.perms.setdefault(key, Perm(SimpleNamespace(name=action), SimpleNamespace(name=resource)))

    def get_permission(self, action: str, resource: str) -> Perm:
        return self.perms[(action, resource)]

    def add_permission_to_role(self, role: Role, perm: Perm) -> None:
        if perm not in role.permissions:
            self.changes += 1
            role.permissions.append(perm)

    def remove_permission_from_role(self, role: Role, perm: Perm) -> None:
        self.changes += 1
        role.permissions.remove(perm)


def test_sync_roles_is_idempotent_and_takes_back_old_user_permissions() -> None:
    sm = FakeSecurityManager()
    maker = sm.add_role("Maker")
    for action, resource in FabAirflowSecurityManagerOverride.USER_PERMISSIONS:  # what makers held before C2
        sm.add_permission_to_role(maker, sm.create_permission(action, resource))
    sync_roles(sm)
    held = {name: {(q.action.name, q.resource.name) for q in role.permissions} for name, role in sm.roles.items()}
    assert {name: held[name] for name in ROLES} == role_permissions(sm)
    assert {RUN_OPERATIONS, DAG_ADMINISTRATION} <= held["Admin"]
    sm.changes = 0
    sync_roles(sm)
    assert sm.changes == 0
