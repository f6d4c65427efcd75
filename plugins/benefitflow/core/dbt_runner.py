"""Running the dbt project in this process: a proposal, or a publish.

Per-run values reach the proposal models as environment variables (see macros/run_value.sql),
so dbt's partial parsing stays valid between calls: a changed `--vars` makes dbt re-parse the
whole project (about 2 s a call), a changed environment variable only the files that read it.

Each process writes its own target folder, seeded with the parse state the installation's
`dbt build` left in its target (BENEFITFLOW_DBT_TARGET; `make up`, the test stack): two processes
(two Airflow tasks, a test beside a task) never overwrite each other's manifest, and the first
call in a process parses partially. That parse is kept for the process's later calls and for the
processes forked from it (Airflow's fork server parses at its start, `benefitflow.core.dbt_preload`, so
a task parses nothing), until a file of the project changes: run values are read when a model is
compiled, at run time, so a kept manifest runs each call's own values (no model reads one in its
config or refs).

Every call takes its locks with a lock timeout (BENEFITFLOW_PUBLISH_LOCK_TIMEOUT seconds, 5 by default): swapping a
rebuilt mart in needs an exclusive lock, which waits for every dashboard query reading it, and every dashboard query
started after would queue behind the waiting swap. Given up after the timeout, the call runs again a moment later
(for up to 15 minutes: a reader's statement is cancelled at its statement_timeout, benefitflow.platform.readers,
but a large commit the publish waits for may take minutes); so a long dashboard query delays a publish by
seconds, is cancelled at its limit, and the publish goes through, and dashboards never queue behind it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benefitflow.core.config import DBT_PROJECT_DIR
from benefitflow.platform.readers import statement_timeout_seconds

PARSE_STATE = "partial_parse.msgpack"
RUN_VALUE_PREFIX = "BENEFITFLOW_RUN_"
LOCK_TIMEOUT_VARIABLE = "BENEFITFLOW_PUBLISH_LOCK_TIMEOUT"  # seconds
DEFAULT_LOCK_TIMEOUT = 5
LOCK_TIMEOUT_MESSAGE = "canceling statement due to lock timeout"  # PostgreSQL's, SQLSTATE 55P03
RETRY_LOCKS_FOR_SECONDS = 15 * 60

_process_target: tuple[int, Path] | None = None
_kept_manifest: tuple[tuple[tuple[str, int, int], ...], Any] | None = None
PARSED_FOLDERS = ("models", "macros", "tests")  # dbt_project.yml's model-, macro- and test-paths
PARSED_FILES = ("dbt_project.yml", "profiles.yml")


class DbtError(RuntimeError):
    pass


MESSAGE_CHARS = 500  # of each failed model's message in the error: enough for dbt's own sentence


@dataclass(frozen=True)
class NodeResult:
    name: str
    resource_type: str
    status: str
    seconds: float
    message: str = ""


def run(args: list[str], values: Mapping[str, Any] | None = None) -> list[NodeResult]:
    """`dbt <args>` in this process against the platform database; raise with dbt's message on failure.

    `values` are the run's values for the proposal models (upload_id, request_id, ...).
    """
    # A reader's statement is cancelled at its limit; a commit in flight (a whole rebuild holds commits off,
    # publishing.hold_off_commits) may take minutes at ten million rows: the retries wait for both.
    deadline = time.monotonic() + max(statement_timeout_seconds() + 30, RETRY_LOCKS_FOR_SECONDS)
    while True:
        # No manifest.json or run_results.json: nobody reads this process's (the result object has the nodes).
        with run_values(values or {}), lock_timeout(lock_timeout_seconds()):
            result = invoke([*args, "--no-write-json"])
        nodes = _node_results(result.result)
        if result.success:
            return nodes
        failed = [node for node in nodes if node.status in ("error", "fail")]
        # Only a lock not granted in time is tried again: the models' transactions rolled back, and running the
        # same selection again is what a publish is (bring the models up to date), so nothing is done twice.
        if failed and all(LOCK_TIMEOUT_MESSAGE in node.message for node in failed) and time.monotonic() < deadline:
            time.sleep(1)
            continue
        detail = ", ".join(f"{node.name} ({node.status}{': ' + node.message[:MESSAGE_CHARS] if node.message else ''})"
                           for node in failed)
        raise DbtError(f"dbt {' '.join(args)} failed: {detail or result.exception or 'see the task log'}")


def lock_timeout_seconds() -> float:
    return float(os.environ.get(LOCK_TIMEOUT_VARIABLE, DEFAULT_LOCK_TIMEOUT))


@contextmanager
def lock_timeout(seconds: float) -> Iterator[None]:
    """dbt's connections for the call get `lock_timeout` (libpq reads PGOPTIONS when it connects; the profile
    sets no options of its own)."""
    saved = os.environ.get("PGOPTIONS")
    os.environ["PGOPTIONS"] = f"{saved or ''} -c lock_timeout={int(seconds * 1000)}".strip()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PGOPTIONS", None)
        else:
            os.environ["PGOPTIONS"] = saved


def invoke(args: list[str]) -> Any:
    """dbt's own result of `dbt <args>` on this project, with this process's target folder and parsed project."""
    from dbt.cli.main import dbtRunner

    return _on_a_short_stack(dbtRunner(manifest=parsed_project()).invoke, [*args, *_project_arguments()])


def parsed_project() -> Any:
    """The project as dbt parsed it in this process or the one it was forked from, parsed again once a file changed."""
    global _kept_manifest
    files = project_files()
    if _kept_manifest is None or _kept_manifest[0] != files:
        _kept_manifest = (files, _parse("--no-write-json"))
    return _kept_manifest[1]


def project_paths() -> list[Path]:
    """The files dbt reads from the project (not what it writes: target/, logs/, its hidden .user.yml), sorted."""
    found = [path for folder in PARSED_FOLDERS for path in (DBT_PROJECT_DIR / folder).rglob("*") if path.is_file()]
    found += [DBT_PROJECT_DIR / name for name in PARSED_FILES if (DBT_PROJECT_DIR / name).exists()]
    return sorted(path for path in found if not path.name.startswith("."))


def project_files() -> tuple[tuple[str, int, int], ...]:
    """Every file dbt reads from the project, with its modification time and size (a few milliseconds)."""
    return tuple((str(path), status.st_mtime_ns, status.st_size)
                 for path in project_paths() for status in [path.stat()])


def _parse(*options: str) -> Any:
    """`dbt parse` of the project (partial, from this process's target): the parsed Manifest."""
    from dbt.cli.main import dbtRunner

    result = _on_a_short_stack(dbtRunner().invoke, ["parse", *options, *_project_arguments()])
    if not result.success:
        raise DbtError(f"dbt parse failed: {result.exception or 'see the log'}")
    return result.result


def _on_a_short_stack(call: Callable[[list[str]], Any], args: list[str]) -> Any:
    """`call(args)` in a thread of its own, the caller waiting.

    Every dbt call builds a new adapter, whose behaviour flags each walk the whole calling stack with
    `inspect.stack()` (dbt_common.behavior_flags), reading every frame's source: under pytest or an Airflow task,
    a third of a small call's time. A new thread's stack is a few frames deep. Daemonic, so a task killed while
    dbt runs exits without waiting for it (its transaction rolls back with its connection). Anything raised in
    the caller meanwhile (Ctrl-C, a task's execution timeout) waits for dbt to finish before it goes up: the
    caller's run values, lock timeout and advisory locks must not change or go while dbt still uses them.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call(args)
        except BaseException as error:  # handed to the caller, raised there
            outcome["error"] = error

    thread = threading.Thread(target=target, name="dbt", daemon=True)
    thread.start()
    try:
        thread.join()
    except BaseException:
        thread.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _project_arguments() -> list[str]:
    target = str(process_target())  # and its log path: a task process may not write in the project
    # No debug log file: nobody reads a process target's (removed at exit), and writing every statement to it
    # took a tenth of a small call; what a run says at info level still goes to the task's log. The relation
    # cache is filled for the selected models' schemas only, not every schema of the project: half a small
    # call. (Not filled at all, dbt would look relations up inside the state models' transactions, which must
    # set their isolation level first.)
    return ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", target, "--log-path", target, "--log-level-file", "none", "--cache-selected-only"]


@contextmanager
def run_values(values: Mapping[str, Any]) -> Iterator[None]:
    """Set BENEFITFLOW_RUN_<NAME> (JSON) for the call; no value of an earlier call stays set.

    The process environment is shared: one dbt call at a time per process (dbtRunner is not thread-safe either)."""
    given = {f"{RUN_VALUE_PREFIX}{name.upper()}": json.dumps(value) for name, value in values.items()}
    saved = {key: value for key, value in os.environ.items() if key.startswith(RUN_VALUE_PREFIX)}
    try:
        for key in saved:
            del os.environ[key]
        os.environ.update(given)
        yield
    finally:
        for key in [key for key in os.environ if key.startswith(RUN_VALUE_PREFIX)]:
            del os.environ[key]
        os.environ.update(saved)


def process_target() -> Path:
    """This process's dbt target folder (a fork gets its own), seeded with the shared parse state."""
    global _process_target
    if _process_target is None or _process_target[0] != os.getpid():
        target = Path(tempfile.mkdtemp(prefix="benefitflow-dbt-target-"))
        shared_state = installation_target() / PARSE_STATE
        if shared_state.exists():
            shutil.copyfile(shared_state, target / PARSE_STATE)
        atexit.register(_remove_if_own, os.getpid(), target)
        _process_target = (os.getpid(), target)
    return _process_target[1]


def manifest() -> dict[str, Any]:
    """The project's manifest as the installation's `dbt build` wrote it (parsed here when it is missing)."""
    written = installation_target() / "manifest.json"
    if not written.exists():
        written = process_target() / "manifest.json"
        _parse()  # writes it (a kept project does not)
    return json.loads(written.read_text())


def installation_target() -> Path:
    """Where the installation's `dbt build` wrote its manifest and parse state."""
    return Path(os.environ.get("BENEFITFLOW_DBT_TARGET") or DBT_PROJECT_DIR / "target")


def _remove_if_own(pid: int, target: Path) -> None:
    if os.getpid() == pid:  # a forked child inherits the parent's exit handlers
        shutil.rmtree(target, ignore_errors=True)


def _node_results(result: Any) -> list[NodeResult]:
    return [
        NodeResult(name=entry.node.name, resource_type=str(entry.node.resource_type), status=str(entry.status),
                   seconds=round(float(entry.execution_time or 0), 3), message=str(entry.message or ""))
        for entry in getattr(result, "results", None) or []
        if getattr(entry, "node", None) is not None
    ]
