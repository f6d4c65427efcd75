"""What a task process keeps and what the outbox's owner gets, when the platform starts as root (system_users.py)."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from benefitflow.platform import system_users
from benefitflow_dev.instance import PROJECT_ROOT
from tests.unit.task_process import run_like_a_task

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root hands files to another user")

SHED = """
import json, os, socket, sys
from benefitflow.platform import system_users
read_end, write_end = os.pipe()
log = open(sys.argv[1], "a")
kept, other = socket.socketpair()
shed = system_users.shed_inherited_files()
os.write(write_end, b"x")  # into /dev/null now, not the pipe
print(json.dumps({"shed": shed, "pipe": os.readlink(f"/proc/self/fd/{write_end}"),
                  "log": os.readlink(f"/proc/self/fd/{log.fileno()}"),
                  "socket": os.readlink(f"/proc/self/fd/{kept.fileno()}").startswith("socket:")}))
"""


def test_a_task_process_holds_none_of_the_pipes_and_files_it_inherited_but_its_sockets(tmp_path: Path) -> None:
    result = run_like_a_task(SHED, str(tmp_path / "service.log"),
                             env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "plugins")})
    assert result.returncode == 0, result.stdout
    seen = json.loads(result.stdout)
    assert seen["pipe"] == seen["log"] == os.devnull and seen["socket"] and seen["shed"] >= 3


@root_only
def test_the_outbox_is_given_to_the_task_user_without_following_a_link(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    outbox, kept = tmp_path / "outbox", tmp_path / "roots-own"
    (outbox / "payrolls").mkdir(parents=True)
    (outbox / "payrolls" / "p.csv").write_text("a\n")
    kept.mkdir()
    (kept / "secret").write_text("root's")
    (outbox / "linked-folder").symlink_to(kept)
    (outbox / "payrolls" / "linked-file.csv").symlink_to(kept / "secret")
    system_users.give_tree(outbox, nobody)
    for path in (outbox, outbox / "payrolls", outbox / "payrolls" / "p.csv", outbox / "linked-folder"):
        assert path.lstat().st_uid == nobody.pw_uid, path
    assert kept.stat().st_uid == 0 and (kept / "secret").stat().st_uid == 0


@root_only
def test_the_task_user_can_run_python_and_read_the_platforms_code() -> None:
    user = system_users.prepare_task_user(PROJECT_ROOT)
    assert user.pw_name == system_users.TASK_USER and user.pw_uid != 0
    assert system_users._runs_as(user, PROJECT_ROOT)
