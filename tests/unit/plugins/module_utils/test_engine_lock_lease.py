"""engine_lock's decisions: a lease is started only when none holds the lock under the token,
ended only when one does, neither in check mode; a refusal names the option, and a lease that
cannot be had fails with the result."""

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _engine_lock_lease
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import (
    EngineLockError,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


class Leases:
    """The host's leases as ``_engine_lock`` would see them, recording what is asked."""

    def __init__(self, holder=None, refusal=None):
        self.holder = holder
        self.refusal = refusal
        self.calls = []

    def lease_holder(self, token):
        return self.holder

    def hold_lease(self, token, purpose, lease, timeout):
        self.calls.append(("hold", token, purpose, lease, timeout))
        if self.refusal:
            raise EngineLockError(self.refusal)
        return 4242, True

    def release_lease(self, token):
        self.calls.append(("release", token))
        return self.holder


@pytest.fixture
def leases(monkeypatch):
    def install(**kwargs):
        fake = Leases(**kwargs)
        for name in ("lease_holder", "hold_lease", "release_lease"):
            monkeypatch.setattr(_engine_lock_lease, name, getattr(fake, name))
        return fake

    return install


def options(**changes):
    params = {
        "state": "held",
        "token": "play-1",
        "purpose": "moving the data-root",
        "lease": 600,
        "lock_timeout": 5,
    }
    params.update(changes)
    return params


@pytest.mark.parametrize(
    "state, holder, check_mode, changed, pid, calls",
    [
        ("held", None, False, True, 4242, [("hold", "play-1", "moving the data-root", 600, 5)]),
        ("held", None, True, True, None, []),
        ("held", 77, False, False, 77, []),
        ("released", 77, False, True, 77, [("release", "play-1")]),
        ("released", 77, True, True, 77, []),
        ("released", None, False, False, None, []),
    ],
)
def test_a_lease_is_started_or_ended_only_when_the_host_differs(
    leases, state, holder, check_mode, changed, pid, calls
):
    fake = leases(holder=holder)
    result = _engine_lock_lease.manage_lease(options(state=state), check_mode)
    assert result == {"changed": changed, "holder_pid": pid, "lease": 600}
    assert fake.calls == calls


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"token": "  "}, "token must not be empty: give every play a token of its own"),
        ({"lease": 0}, "lease must be a positive number of seconds, got 0"),
    ],
)
def test_a_bad_option_is_named_before_the_host_is_asked(leases, changes, message):
    fake = leases(holder=77)
    with pytest.raises(StorageError) as refused:
        _engine_lock_lease.manage_lease(options(**changes), False)
    assert str(refused.value) == message
    assert refused.value.result == {}
    assert fake.calls == []


def test_a_lease_that_cannot_be_had_fails_with_the_result(leases):
    leases(refusal="another run is changing this host's Docker engine: pid 9 holds it")
    with pytest.raises(EngineLockError, match="pid 9 holds it") as refused:
        _engine_lock_lease.manage_lease(options(), False)
    assert refused.value.result == {"changed": True, "holder_pid": None, "lease": 600}
