"""Airflow's FAB auth manager, with "trigger" and "answer" kept apart from run operations (review C2).

FAB cannot tell these apart with permissions alone. `FabAuthManager.is_authorized_dag` wants DAG
`can_edit` for *every* write to anything under a DAG ("Scenario 3": non-GET on an access entity
checks the DAG with PUT), so:

- triggering, POST /dags/{id}/dagRuns, needs `can_create` on DAG Runs **and** `can_edit` on DAGs;
- answering an approval, PATCH .../hitlDetails, needs `can_edit` on HITL Detail **and** on DAGs;
- pausing, PATCH /dags/{id} (and the bulk PATCH /dags), needs `can_edit` on DAGs and nothing else.

So whoever may trigger or answer may also pause every DAG. This manager puts one rule in front
of FAB's, for every write under a DAG except the two the platform's people make (triggering a
run, answering an approval request):

- a write to a DAG's runs, task instances, XComs or task state (clear, mark, delete) needs
  `can_edit` on `Run Operations` (roles DataEngineer and Admin);
- a write to the DAG itself (pause, unpause, delete) needs `can_edit` on `DAG Administration`
  (Admin only: FAB gives Admin every permission that is not per-DAG).

FAB's own checks still apply after it (a Maker also lacks `can_edit`/`can_delete` on DAG Runs and
Task Instances, so the role sets alone already refuse clear/mark/delete).

The class name must contain "FabAuthManager": Airflow keeps per-DAG permissions in step only for
auth managers so named (airflow/dag_processing/collection.py, `"FabAuthManager" in conf.get(...)`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
from airflow.providers.fab.www.security.permissions import ACTION_CAN_EDIT
from airflow.utils.session import NEW_SESSION, provide_session

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.providers.fab.auth_manager.models import User
    from sqlalchemy.orm import Session

RUN_OPERATIONS = (ACTION_CAN_EDIT, "Run Operations")
DAG_ADMINISTRATION = (ACTION_CAN_EDIT, "DAG Administration")

# The DAG writes that need neither: a maker triggers, a checker answers (FAB still checks them).
PEOPLE_WRITES: frozenset[tuple[str, DagAccessEntity | None]] = frozenset({
    ("POST", DagAccessEntity.RUN),
    ("PUT", DagAccessEntity.HITL_DETAIL),
})


def write_permission(method: str, access_entity: DagAccessEntity | None) -> tuple[str, str] | None:
    """The extra permission a DAG request needs here, None when FAB's own checks suffice."""
    if method == "GET" or (method, access_entity) in PEOPLE_WRITES:
        return None
    return DAG_ADMINISTRATION if access_entity is None else RUN_OPERATIONS


class BenefitflowFabAuthManager(FabAuthManager):
    def is_authorized_dag(
        self,
        *,
        method: ResourceMethod,
        user: User,
        access_entity: DagAccessEntity | None = None,
        details: DagDetails | None = None,
    ) -> bool:
        # Every caller goes through here: route dependencies, and batch_is_authorized_dag (bulk run
        # edits, clearDagRuns) and filter_authorized_dag_ids, which call this method per DAG.
        needed = write_permission(method, access_entity)
        if needed is not None and needed not in self._get_user_permissions(user):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    @provide_session
    def get_authorized_dag_ids(
        self, *, user: User, method: ResourceMethod = "GET", session: Session = NEW_SESSION,
    ) -> set[str]:
        # The bulk PATCH /dags (pause many at once) takes its "editable DAGs" from this list.
        needed = write_permission(method, None)
        if needed is not None and needed not in self._get_user_permissions(user):
            return set()
        return super().get_authorized_dag_ids(user=user, method=method, session=session)
