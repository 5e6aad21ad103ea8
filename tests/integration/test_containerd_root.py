"""containerd's root, moved for real: forky's containerd 2.1 (run chrooted, see
harness/engine_root.py) reads the configuration the module edits, and its namespaces are listed
as the module lists them.

The whole move (both trees, the services, the roll-back) runs in molecule scenario
containerd_store on forky, where systemd runs containerd.service and docker.service.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._capacity import (  # noqa: E402
    parse_containerd_root,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._containerd import (  # noqa: E402
    ContainerdRootSwitch,
    foreign_namespaces,
    holds_root,
    namespaces,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def run_dir():
    # Unix socket paths must stay below 108 bytes: a short directory in /run.
    path = tempfile.mkdtemp(prefix="dockerhost-test-ctrd-", dir="/run")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _start_containerd(engine, config, run_dir, binds):
    socket = os.path.join(run_dir, "containerd.sock")
    argv = engine.command(
        [
            "/usr/bin/containerd",
            "--config",
            config,
            "--address",
            socket,
            "--state",
            os.path.join(run_dir, "state"),
        ],
        [run_dir, *binds],
    )
    log = open(os.path.join(run_dir, "containerd.log"), "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"LANG": "C", "LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    log.close()
    deadline = time.monotonic() + 30
    while not os.path.exists(socket):
        if process.poll() is not None or time.monotonic() > deadline:
            with open(os.path.join(run_dir, "containerd.log"), encoding="utf-8") as handle:
                tail = handle.read()[-2000:]
            process.kill()
            raise AssertionError("containerd did not start:\n%s" % tail)
        time.sleep(0.05)
    return process, socket


def _stop(process):
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_a_real_containerd_runs_on_the_root_the_edit_names(forky_engine, tmp_path, run_dir):
    with open(
        os.path.join(forky_engine.path, "etc", "containerd", "config.toml"), encoding="utf-8"
    ) as handle:
        shipped = handle.read()
    config = tmp_path / "config.toml"
    config.write_text(shipped)
    new_root = str(tmp_path / "containerd")
    switch = ContainerdRootSwitch(str(config))
    assert switch.switch(new_root) == shipped
    edited = config.read_text()
    assert parse_containerd_root(edited) == new_root
    # Every other line is the package's, in its order.
    assert [line for line in edited.splitlines() if line != 'root = "%s"' % new_root] == (
        shipped.splitlines()
    )

    process, socket = _start_containerd(forky_engine, str(config), run_dir, [str(tmp_path)])
    try:
        deadline = time.monotonic() + 10
        while not holds_root(new_root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holds_root(new_root), os.listdir(new_root)
        assert os.path.isfile(os.path.join(new_root, "io.containerd.metadata.v1.bolt", "meta.db"))

        # The namespaces, listed with the host's ctr as the module does: Docker's own, then a
        # Kubernetes one that makes the move need containerd_shared.
        ctr = ["ctr", "--address", socket, "namespaces", "create"]
        subprocess.run([*ctr, "moby"], check=True, capture_output=True)
        assert foreign_namespaces(namespaces(socket)) == []
        subprocess.run([*ctr, "k8s.io"], check=True, capture_output=True)
        assert namespaces(socket) == ["k8s.io", "moby"]
        assert foreign_namespaces(namespaces(socket)) == ["k8s.io"]
    finally:
        _stop(process)
    assert not holds_root(new_root)

    switch.restore(shipped)
    assert config.read_text() == shipped
