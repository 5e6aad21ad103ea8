"""The engine lock with real processes holding a real flock in a temporary directory."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import (
    EngineLock,
    EngineLockError,
    describe_holder,
    hold_lease,
    lease_holder,
    parse_proc_locks,
    release_lease,
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import EngineLock
    EngineLock(sys.argv[2], 5, directory=sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path):
    """Start a process that takes the lock in ``tmp_path/lock`` and keeps it; yields it."""
    directory = str(tmp_path / "lock")
    started = []

    def start(purpose="data_root: moving the data-root to /srv/docker"):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, directory, purpose],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        )
        started.append(process)
        assert process.stdout.readline() == "held\n"
        return process

    yield directory, start
    for process in started:
        process.kill()
        process.wait()


def test_a_second_run_waits_then_names_the_holder(holder):
    directory, start = holder
    process = start()
    began = time.monotonic()
    with pytest.raises(EngineLockError) as error:
        EngineLock("daemon_config: updating /etc/docker/daemon.json", 1, directory).acquire()
    assert time.monotonic() - began >= 1
    message = str(error.value)
    assert "process %d (data_root: moving the data-root to /srv/docker), since " % process.pid in (
        message
    )
    assert os.path.join(directory, "engine.lock") in message
    assert "Waited 1 seconds" in message


def test_a_holder_killed_with_sigkill_blocks_nobody(holder):
    directory, start = holder
    process = start()
    process.send_signal(signal.SIGKILL)
    process.wait()
    lock = EngineLock("next run", 5, directory).acquire()
    try:
        assert lock.waited < 1
        with open(lock.path, encoding="utf-8") as handle:
            record = json.load(handle)
        assert record["pid"] == os.getpid() and record["purpose"] == "next run"
    finally:
        lock.release()


def test_the_lock_is_taken_once_the_holder_releases_it(tmp_path):
    directory = str(tmp_path / "lock")
    first = EngineLock("first", 5, directory).acquire()
    # A second descriptor in this same process conflicts like another process would.
    second = EngineLock("second", 0, directory)
    with pytest.raises(EngineLockError, match=r"process %d \(first\)" % os.getpid()):
        second.acquire()
    first.release()
    assert EngineLock("second", 0, directory).acquire().waited == 0


def test_directory_is_made_for_root_alone(tmp_path):
    directory = str(tmp_path / "lock")
    EngineLock("x", 0, directory).acquire().release()
    assert os.stat(directory).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(directory, "engine.lock")).st_mode & 0o777 == 0o600


def test_a_directory_others_may_write_is_refused(tmp_path):
    directory = tmp_path / "lock"
    directory.mkdir(mode=0o777)
    os.chmod(directory, 0o777)
    with pytest.raises(EngineLockError, match="writable by group or others .mode 0777.; remove it"):
        EngineLock("x", 0, str(directory)).acquire()


def test_a_planted_symlink_is_not_followed(tmp_path):
    directory = tmp_path / "lock"
    directory.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("precious\n")
    os.symlink(elsewhere, directory / "engine.lock")
    with pytest.raises(EngineLockError, match="cannot open the lock file"):
        EngineLock("x", 0, str(directory)).acquire()
    assert elsewhere.read_text() == "precious\n"


def test_a_symlinked_directory_is_not_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(real, tmp_path / "lock")
    with pytest.raises(EngineLockError, match="not a directory: remove it"):
        EngineLock("x", 0, str(tmp_path / "lock")).acquire()


PROC_LOCKS = """\
1: FLOCK  ADVISORY  WRITE 4242 fe:01:1311 0 EOF
1: -> FLOCK  ADVISORY  WRITE 4343 fe:01:1311 0 EOF
2: POSIX  ADVISORY  WRITE 77 00:19:12 0 EOF
3: FLOCK  ADVISORY  READ 88 08:02:99 0 EOF
"""


def test_proc_locks_gives_the_holder_not_the_waiter():
    assert parse_proc_locks(PROC_LOCKS) == {(0xFE, 0x01, 1311): 4242}


@pytest.mark.parametrize(
    "record, kernel_pid, expected",
    [
        ({"pid": 5, "purpose": "p", "since": "T"}, 5, "process 5 (p), since T"),
        ({"pid": 5, "purpose": "p"}, None, "process 5 (p)"),
        # The record is an earlier holder's: the kernel's answer wins.
        ({"pid": 5, "purpose": "p", "since": "T"}, 9, "process 9"),
        ({}, None, "another process"),
    ],
)
def test_describe_holder(record, kernel_pid, expected):
    assert describe_holder(record, kernel_pid) == expected


def test_the_lock_descriptor_is_not_inherited(tmp_path):
    # A dockerd started by an init script while the lock is held must not keep it.
    lock = EngineLock("x", 0, str(tmp_path / "lock")).acquire()
    try:
        assert not os.get_inheritable(lock._fd)
    finally:
        lock.release()


def test_a_lease_covers_its_own_play_and_blocks_every_other_run(tmp_path):
    directory = str(tmp_path / "lock")
    pid, started = hold_lease("play-1", "provision role", 60, 5, directory)
    try:
        assert started and lease_holder("play-1", directory) == pid
        assert hold_lease("play-1", "provision role", 60, 5, directory) == (pid, False)
        own = EngineLock("data_root", 0, directory, token="play-1").acquire()
        assert own.covered_by == pid
        with pytest.raises(EngineLockError, match=r"process %d \(provision role\)" % pid):
            EngineLock("daemon_config", 0, directory, token="play-2").acquire()
        with pytest.raises(EngineLockError, match=r"process %d \(provision role\)" % pid):
            EngineLock("daemon_config", 0, directory).acquire()
    finally:
        assert release_lease("play-1", directory=directory) == pid
    assert lease_holder("play-1", directory) is None
    assert release_lease("play-1", directory=directory) is None
    EngineLock("next run", 0, directory).acquire().release()


def test_a_lease_that_is_never_released_ends_by_itself(tmp_path):
    directory = str(tmp_path / "lock")
    pid, _started = hold_lease("play-1", "provision role", 1, 5, directory)
    assert lease_holder("play-1", directory) == pid
    lock = EngineLock("next run", 5, directory).acquire()
    try:
        assert 0 < lock.waited < 3
    finally:
        lock.release()


def test_a_lease_waits_for_another_run_then_names_it(holder):
    directory, start = holder
    process = start()
    with pytest.raises(EngineLockError, match="process %d" % process.pid):
        hold_lease("play-1", "provision role", 60, 1, directory)
    assert lease_holder("play-1", directory) is None


def test_a_lease_outlives_its_time_while_a_task_of_its_play_still_runs(tmp_path):
    directory = str(tmp_path / "lock")
    pid, _started = hold_lease("play-1", "provision role", 1, 5, directory)
    task = EngineLock("data_root", 0, directory, token="play-1").acquire()
    assert task.covered_by == pid
    time.sleep(2.5)
    assert lease_holder("play-1", directory) == pid, "the lease waits for the running task"
    with pytest.raises(EngineLockError, match=r"process %d \(provision role\)" % pid):
        EngineLock("another run", 0, directory).acquire()
    task.release()
    after = EngineLock("another run", 5, directory).acquire()
    try:
        assert after.waited < 3
        assert [name for name in os.listdir(directory) if name.startswith("lease-")] == []
    finally:
        after.release()


def test_a_lease_check_creates_nothing(tmp_path):
    directory = str(tmp_path / "lock")
    assert lease_holder("play-1", directory) is None
    assert not os.path.exists(directory)
