"""The host's engine lock through the modules themselves: a run that finds the lock held waits,
then fails naming the holder and changing nothing; a holder killed with SIGKILL blocks nobody.
The holder is a real process holding the real lock, /run/dockerhost-storage/engine.lock."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from ansible_module import run_module

pytestmark = pytest.mark.integration

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402

HOLDER = textwrap.dedent(
    """
    import sys, time
    from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import EngineLock
    EngineLock(sys.argv[1], 60).acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def lock_holder():
    """A process holding the host's engine lock, as a module run in progress does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "data_root: moving the data-root to /srv/docker"],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=collections_root()),
    )
    try:
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_daemon_config_waits_names_the_holder_and_changes_nothing(lock_holder, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"log-level": "warn"}\n')
    args = {"config_path": str(path), "storage_driver": "overlay2", "lock_timeout": 2}

    blocked = run_module("daemon_config", args)
    assert blocked.get("failed")
    assert (
        "process %d (data_root: moving the data-root to /srv/docker)" % lock_holder.pid
        in (blocked["msg"])
    )
    assert "/run/dockerhost-storage/engine.lock" in blocked["msg"]
    assert path.read_text() == '{"log-level": "warn"}\n'

    planned = run_module("daemon_config", args, check=True)
    assert planned["changed"] is True, "check mode changes nothing and does not wait"

    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait()
    done = run_module("daemon_config", args)
    assert not done.get("failed"), done.get("msg")
    assert done["changed"] is True
    assert '"storage-driver": "overlay2"' in path.read_text()


def test_data_root_names_the_holder_before_it_reads_anything(lock_holder, tmp_path):
    result = run_module(
        "data_root",
        {
            "path": str(tmp_path / "docker"),
            "config_path": str(tmp_path / "daemon.json"),
            "docker_host": "unix://%s" % (tmp_path / "none.sock"),
            "lock_timeout": 1,
        },
    )
    assert result.get("failed")
    assert result["msg"].startswith(
        "another run is changing this host's Docker engine: process %d" % lock_holder.pid
    )
    assert not os.path.exists(str(tmp_path / "docker"))


def test_a_play_lease_lets_its_own_tasks_through_and_holds_every_other_run(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{}\n")
    lease = {"token": "play-a", "purpose": "provision role on this host", "lock_timeout": 5}
    held = run_module("engine_lock", lease)
    try:
        assert not held.get("failed"), held.get("msg")
        assert held["changed"] and held["holder_pid"] > 0
        assert run_module("engine_lock", lease)["changed"] is False, "held already"

        other = run_module(
            "daemon_config",
            {
                "config_path": str(path),
                "storage_driver": "vfs",
                "lock_timeout": 1,
                "lock_token": "play-b",
            },
        )
        assert other.get("failed")
        assert "process %d (provision role on this host)" % held["holder_pid"] in other["msg"]
        assert path.read_text() == "{}\n"

        own = run_module(
            "daemon_config",
            {
                "config_path": str(path),
                "storage_driver": "vfs",
                "lock_timeout": 1,
                "lock_token": "play-a",
            },
        )
        assert not own.get("failed"), own.get("msg")
        assert own["changed"] is True
    finally:
        released = run_module("engine_lock", dict(lease, state="released"))
    assert released["changed"] and released["holder_pid"] == held["holder_pid"]
    assert run_module("engine_lock", dict(lease, state="released"))["changed"] is False
    after = run_module("daemon_config", {"config_path": str(path), "storage_driver": "overlay2"})
    assert not after.get("failed") and after["changed"] is True


def test_reclaim_waits_names_the_holder_and_removes_nothing(lock_holder, busybox_dockerd):
    daemon = busybox_dockerd
    daemon.docker("create", "--name", "old", "dockerhost-test/busybox", "true")
    args = {
        "docker_host": "unix://" + daemon.socket,
        "target_free_bytes_percent": 100,
        "stopped_containers_older_than": "0s",
        "fail_when_unreached": False,
        "lock_timeout": 2,
    }
    blocked = run_module("reclaim", args)
    assert blocked.get("failed")
    assert "process %d (data_root: moving the data-root" % lock_holder.pid in blocked["msg"]
    planned = run_module("reclaim", args, check=True)
    assert not planned.get("failed"), "check mode does not wait: %s" % planned.get("msg")
    assert planned["removed_objects"] >= 1
    assert len(daemon.api("GET", "/containers/json?all=1")) == 1, "the blocked run removed it"

    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait()
    done = run_module("reclaim", args)
    assert not done.get("failed"), done.get("msg")
    assert daemon.api("GET", "/containers/json?all=1") == []
