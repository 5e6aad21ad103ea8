"""The engine's and containerd's services, driven through a systemctl that records its calls."""

import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._containerd import (
    ContainerdService,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_service import (
    EngineService,
    ServiceError,
)


@pytest.fixture
def systemctl(tmp_path, monkeypatch):
    """A systemctl on PATH that appends its arguments to a log; ``fail`` makes a verb fail."""
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$*" >>"%s"\n'
        'case "$1" in "$FAIL_VERB") echo "Job for $2 failed." >&2; exit 1 ;; esac\n' % log
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (fake.parent, os.environ["PATH"]))

    def calls():
        return log.read_text().splitlines() if log.exists() else []

    return calls


def test_a_deliberate_start_resets_the_start_limit_first(systemctl):
    service = EngineService("systemd", timeout=10)
    service.stop()
    service.start()
    assert systemctl() == [
        "stop docker.socket docker.service",
        "reset-failed docker.service docker.socket",
        "start docker.service docker.socket",
    ]


def test_containerd_is_started_the_same_way(systemctl):
    service = ContainerdService("systemd", timeout=10)
    service.stop()
    service.start()
    assert systemctl() == [
        "stop containerd.service",
        "reset-failed containerd.service",
        "start containerd.service",
    ]


def test_a_reset_that_fails_does_not_stop_the_start_and_a_failed_start_is_named(
    systemctl, monkeypatch
):
    monkeypatch.setenv("FAIL_VERB", "reset-failed")
    EngineService("systemd", timeout=10).start()
    assert systemctl()[-1] == "start docker.service docker.socket"
    monkeypatch.setenv("FAIL_VERB", "start")
    with pytest.raises(ServiceError, match="systemctl start docker.service docker.socket failed"):
        EngineService("systemd", timeout=10).start()
