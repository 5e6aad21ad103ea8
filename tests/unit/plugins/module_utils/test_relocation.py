import errno
import os
import re

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _relocation
from ansible_collections.dockerhost.storage.plugins.module_utils._containerd import ContainerdError
from ansible_collections.dockerhost.storage.plugins.module_utils._relocation import (
    PHASE_COPYING,
    PHASE_SWITCHED,
    Relocation,
    RelocationError,
    inventory_problems,
    is_within,
    kept_source_name,
    read_journal,
    target_problems,
)


@pytest.mark.parametrize(
    "path, parent, expected",
    [
        ("/var/lib/docker", "/var/lib/docker", True),
        ("/var/lib/docker/x", "/var/lib/docker", True),
        ("/var/lib/docker2", "/var/lib/docker", False),
        ("/srv", "/", True),
    ],
)
def test_is_within(path, parent, expected):
    assert is_within(path, parent) is expected


def test_kept_source_name_is_a_sibling_with_utc_time():
    assert (
        kept_source_name("/var/lib/docker/", now=0) == "/var/lib/docker.relocated-19700101T000000Z"
    )


@pytest.fixture(autouse=True)
def journal_directory(tmp_path, monkeypatch):
    """Journals go to a directory of the test's, not to /var/lib."""
    directory = str(tmp_path / "state" / "relocation")
    monkeypatch.setattr(_relocation, "JOURNAL_DIRECTORY", directory)
    return directory


def test_journal_round_trip_and_a_damaged_one_is_named(tmp_path, journal_directory):
    target = str(tmp_path / "docker")
    assert read_journal(target) is None
    _relocation.write_journal(target, {"phase": PHASE_COPYING, "source": "/var/lib/docker"})
    assert read_journal(target)["phase"] == PHASE_COPYING
    assert _relocation.journal_path(target).startswith(journal_directory + "/docker-")
    assert os.stat(journal_directory).st_mode & 0o777 == 0o700
    assert os.stat(_relocation.journal_path(target)).st_mode & 0o777 == 0o600
    with open(_relocation.journal_path(target), "w") as handle:
        handle.write("{not json")
    with pytest.raises(RelocationError, match="cannot read the relocation journal .*/docker-"):
        read_journal(target)


def test_a_journal_others_could_write_is_not_trusted(tmp_path, journal_directory):
    target = str(tmp_path / "docker")
    _relocation.write_journal(target, {"phase": PHASE_COPYING, "source": "/var/lib/docker"})
    path = _relocation.journal_path(target)
    os.chmod(path, 0o666)
    with pytest.raises(RelocationError, match="writable by group or others .mode 0666.: not trust"):
        read_journal(target)
    os.chmod(path, 0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(RelocationError, match="belongs to uid 65534: not trusting it"):
        read_journal(target)
    os.unlink(path)
    planted = tmp_path / "planted.json"
    planted.write_text('{"phase": "copying", "source": "/etc", "target": "%s"}' % target)
    os.symlink(planted, path)
    with pytest.raises(RelocationError, match="cannot open the relocation journal"):
        read_journal(target)


def test_a_journal_of_another_target_is_refused(tmp_path):
    target = str(tmp_path / "docker")
    _relocation.write_journal(str(tmp_path / "other"), {"phase": PHASE_COPYING})
    os.rename(_relocation.journal_path(str(tmp_path / "other")), _relocation.journal_path(target))
    with pytest.raises(RelocationError, match="is not one of a move to"):
        read_journal(target)


@pytest.mark.parametrize(
    "journal, source, problem",
    [
        ({"phase": PHASE_COPYING, "source": "/var/lib/docker"}, "/var/lib/docker", None),
        ({"phase": PHASE_COPYING, "source": "/etc"}, "/var/lib/docker", "is not the data-root"),
        ({"phase": PHASE_COPYING}, "/var/lib/docker", "names no absolute source"),
        (
            {"phase": PHASE_SWITCHED, "source": "/etc", "previous_config": "{}"},
            "/srv/docker",
            "not the data-root its previous configuration names (/var/lib/docker)",
        ),
        (
            {
                "phase": PHASE_SWITCHED,
                "source": "/data/docker",
                "previous_config": '{"data-root": "/data/docker"}',
            },
            "/srv/docker",
            None,
        ),
    ],
)
def test_journal_problems(journal, source, problem):
    problems = _relocation.journal_problems(journal, source)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


def _problems(source, target, journal=None, force=False, same=True):
    return target_problems(source, target, journal, force, same)


def test_target_rules(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    target = tmp_path / "target"
    assert _problems(str(source), str(target)) == []
    target.mkdir()
    (target / "stale").write_text("x")
    assert "is not empty (1 entries, such as stale)" in _problems(str(source), str(target))[0]
    assert _problems(str(source), str(target), force=True) == []
    resume = {"source": str(source)}
    assert _problems(str(source), str(target), journal=resume) == []
    other = {"source": "/elsewhere"}
    assert _problems(str(source), str(target), journal=other)
    assert "inside the current data-root" in _problems(str(source), str(source / "sub"))[0]
    assert "is inside path" in _problems(str(source), str(tmp_path))[0]
    link = tmp_path / "link"
    link.symlink_to(source)
    link_problems = " ".join(_problems(str(source), str(link)))
    assert "is a symlink" in link_problems and "inside the current data-root" in link_problems
    through_link = tmp_path / "parent-link"
    through_link.symlink_to(source)
    assert "inside the current data-root" in _problems(str(source), str(through_link / "new"))[0]
    assert "pseudo or runtime filesystem" in _problems(str(source), "/run/docker")[0]


def test_same_filesystem_is_refused_unless_allowed(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    problems = _problems(str(source), str(tmp_path / "t"), same=False)
    assert "same filesystem" in problems[0] and "allow_same_filesystem" in problems[0]


def test_metadata_check_passes_on_a_normal_filesystem_and_leaves_nothing(tmp_path):
    assert _relocation.metadata_problems(str(tmp_path)) == []
    assert os.listdir(str(tmp_path)) == []


def test_inventory_problems_name_what_is_missing():
    before = {
        "images": ["sha256:a", "sha256:b"],
        "containers": ["c1"],
        "running": ["c1"],
        "volumes": ["data"],
    }
    after = {"images": ["sha256:a"], "containers": ["c1"], "running": [], "volumes": ["data"]}
    assert inventory_problems(before, after) == [
        "1 images are missing after the move: sha256:b",
        "1 running containers are missing after the move: c1",
    ]
    assert inventory_problems(before, before) == []


class FakeEngine:
    """The engine as the transaction sees it: answers or not, and what it holds."""

    def __init__(self, root, running=True, start_fails_on=None):
        self.root = root
        self.running = running
        self.start_fails_on = start_fails_on
        self.calls = []

    def client(self):
        return self if self.running else None

    def info(self):
        return {"DockerRootDir": self.root, "Driver": "overlay2"}

    def call(self, method, path):
        if path.startswith("/images"):
            return [{"Id": "sha256:img"}]
        if path.startswith("/containers"):
            return [{"Id": "c1", "State": "running"}]
        return {"Volumes": [{"Name": "data"}]}


class FakeService:
    def __init__(self, engine, config):
        self.engine = engine
        self.config = config

    def stop(self):
        self.engine.calls.append("stop")
        self.engine.running = False

    def start(self):
        self.engine.calls.append("start")
        if self.config.root == self.engine.start_fails_on:
            return
        self.engine.root = self.config.root
        self.engine.running = True


class FakeConfig:
    moves_data_root = True

    def __init__(self, root):
        self.root = root

    @staticmethod
    def describe(source, target, driver):
        return "switched to %s" % target

    def current(self):
        return '{"data-root": "%s"}' % self.root

    def switch(self, target, driver):
        previous, self.root = self.current(), target
        return previous

    def restore(self, previous):
        self.root = previous.split('"')[3]


class FakeDifferences:
    def __init__(self, count=0):
        self.count = count
        self.examples = ["etc/x: mode differs"] if count else []
        self.paths = {"etc/x"} if count else set()
        self.paths_complete = True


class FakeCopy:
    def __init__(self):
        self.changed = set()
        self.changed_directories = set()
        self.skipped_mounts = []
        self.on_progress = None
        self.runs = 0

    def run(self):
        self.runs += 1
        return {"copied": 1, "bytes": 1, "removed": 0}


def _relocation_for(tmp_path, engine, differences=0, config=None):
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    target = str(tmp_path / "target")
    config = config or FakeConfig(str(source))
    service = FakeService(engine, config)

    def wait_for_engine():
        if not engine.running:
            raise RuntimeError("the engine did not answer within 1 s")
        return engine

    collaborators = {
        "copy": FakeCopy(),
        "compare": lambda s, t, h: FakeDifferences(differences),
        "compare_in_detail": lambda s, t: FakeDifferences(),
        "compare_entries": lambda s, t, p, d, h: (
            differences,
            ["etc/x: mode differs"] if differences else [],
        ),
        "config": config,
        "service": service,
        "engine": engine.client,
        "wait_for_engine": wait_for_engine,
        "wait_for_engine_gone": lambda client: None,
        "start_container": lambda client, container: None,
        "checkpoint": engine.calls.append,
    }
    return Relocation(str(source), target, "overlay2", collaborators), config


def test_success_stops_once_switches_then_starts_and_keeps_the_source(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine)
    result = relocation.run()
    assert engine.calls == [
        "before-bulk-copy",
        "after-bulk-copy",
        "stop",
        "after-stop",
        "after-final-pass",
        "after-verify",
        "during-switch",
        "after-config",
        "start",
        "after-start",
        "after-source-kept",
    ]
    assert config.root == relocation.target and engine.root == relocation.target
    assert result["source_kept_at"].startswith(relocation.source + ".relocated-")
    assert os.path.isdir(result["source_kept_at"])
    assert read_journal(relocation.target) is None


def test_the_copy_is_on_disk_before_daemon_json_names_it(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine)
    synced = []
    relocation.sync = lambda path: synced.append((path, config.root))
    relocation.run()
    # Once after the bulk copy, once after the final pass: both before the switch.
    assert synced == [(relocation.target, relocation.source)] * 2


def test_a_copy_that_cannot_be_written_to_disk_is_never_switched_to(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine)

    def sync(path):
        raise OSError(5, "cannot write %s to disk: Input/output error" % path)

    relocation.sync = sync
    with pytest.raises(OSError, match="Input/output error"):
        relocation.run()
    assert "stop" not in engine.calls and engine.running
    assert config.root == relocation.source


def test_a_copy_that_differs_is_never_switched_to(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine, differences=1)
    with pytest.raises(RelocationError, match="differs .* in 1 entries: etc/x: mode differs"):
        relocation.run()
    assert config.root == relocation.source and engine.running
    assert engine.root == relocation.source
    assert read_journal(relocation.target)["phase"] == PHASE_COPYING


def _kept_copy(relocation, entries_check):
    """A copy whose first run kept entries found on the target; ``entries_check`` answers
    the check of what was copied again."""
    relocation.verify_full = True
    relocation.copy.kept_existing = 3
    relocation.copy.forgotten = []
    relocation.copy.forget = relocation.copy.forgotten.extend
    relocation.copy.run = lambda: {"copied": 1, "bytes": 1, "removed": 0, "linked": 0}
    relocation.compare_entries = entries_check


def test_kept_entries_that_differ_are_copied_again_once_then_checked(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine, differences=1)
    checked = []
    _kept_copy(relocation, lambda s, t, p, d, h: checked.append((p, h)) or (0, []))
    relocation.run()
    assert relocation.copy.forgotten == ["etc/x"]
    assert checked == [({"etc/x"}, {"etc/x"})], "what differed is hashed again"
    assert config.root == relocation.target
    assert "copied again 1 entries that were on the target but differed" in " ".join(
        relocation.steps
    )


def test_kept_entries_that_still_differ_are_never_switched_to(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine, differences=1)
    _kept_copy(relocation, lambda s, t, p, d, h: (1, ["etc/x: sha256 differs"]))
    with pytest.raises(RelocationError, match="in 1 entries: etc/x: sha256 differs; rolled back"):
        relocation.run()
    assert config.root == relocation.source and engine.running


def test_an_engine_that_fails_on_the_new_root_is_started_on_the_old_one(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"), start_fails_on=str(tmp_path / "target"))
    relocation, config = _relocation_for(tmp_path, engine)
    with pytest.raises(RelocationError, match="daemon.json restored, the engine runs on"):
        relocation.run()
    assert config.root == relocation.source
    assert engine.running and engine.root == relocation.source
    assert os.path.isdir(relocation.source)
    assert read_journal(relocation.target)["phase"] == PHASE_COPYING


def test_a_switched_journal_is_finished_by_the_next_run(tmp_path):
    engine = FakeEngine(str(tmp_path / "target"), running=False)
    relocation, config = _relocation_for(tmp_path, engine)
    config.root = relocation.target
    os.makedirs(relocation.target)
    _relocation.write_journal(relocation.target, {"phase": PHASE_SWITCHED})
    inventory = {
        "images": ["sha256:img"],
        "containers": ["c1"],
        "running": ["c1"],
        "volumes": ["data"],
    }
    result = relocation.finish(True, inventory)
    assert engine.running and result["source_kept_at"]
    assert read_journal(relocation.target) is None


def test_fstab_line_escapes_and_keeps_the_rest():
    text = "UUID=1 / ext4 defaults 0 1"
    result = _relocation.fstab_with_bind(text, "/srv/docker data", "/var/lib/docker")
    assert result.startswith("UUID=1 / ext4 defaults 0 1\n# data-root moved by")
    assert result.endswith("/srv/docker\\040data /var/lib/docker none bind 0 0\n")
    assert _relocation.fstab_entries_for(result, "/var/lib/docker/") == [
        (3, "/srv/docker\\040data /var/lib/docker none bind 0 0")
    ]
    assert _relocation.fstab_entries_for("# /dev/sdb1 /var/lib/docker xfs", "/var/lib/docker") == []


def test_a_filesystem_still_mounted_inside_after_the_stop_is_never_switched_to(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine)
    relocation.copy.skipped_mounts = ["volumes"]
    with pytest.raises(RelocationError, match="volumes is still mounted inside the data-root"):
        relocation.run()
    assert config.root == relocation.source and engine.root == relocation.source


MOUNTINFO = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 22 253:1 /var/lib/docker /var/lib/docker rw,relatime shared:1 - ext4 /dev/vda1 rw
31 22 253:2 / /srv rw,relatime shared:2 - xfs /dev/vdb1 rw
40 30 0:50 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=l/A
41 30 0:51 / /var/lib/docker/containers/c1/mounts/shm rw - tmpfs shm rw
42 30 253:3 / /var/lib/docker/volumes rw - ext4 /dev/vdc1 rw
43 22 253:4 / /var/lib/containerd rw - ext4 /dev/vdd1 rw
"""


@pytest.fixture
def mountinfo(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return str(path)


def test_foreign_mounts_are_what_the_engine_did_not_make(mountinfo):
    assert _relocation.foreign_mounts("/var/lib/docker", mountinfo) == [
        "/var/lib/docker/volumes (ext4)"
    ]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/var/lib/docker", False),  # dockerd's bind mount of the directory onto itself
        ("/var/lib/containerd", True),
        ("/srv", True),
        ("/var/lib", False),
    ],
)
def test_own_filesystem_tells_a_self_bind_mount_apart(mountinfo, path, expected):
    assert _relocation.is_own_filesystem(path, mountinfo) is expected


def test_daemon_json_behind_a_symlink_stays_a_symlink(tmp_path):
    real = tmp_path / "conf" / "daemon.json"
    real.parent.mkdir()
    real.write_text('{"log-driver": "journald"}\n')
    link = tmp_path / "daemon.json"
    link.symlink_to(real)
    switch = _relocation.DaemonJsonSwitch(str(link))
    previous = switch.current()
    switch.switch("/srv/docker", "overlay2")
    assert link.is_symlink()
    assert '"data-root": "/srv/docker"' in real.read_text()
    assert '"log-driver": "journald"' in real.read_text()
    switch.restore(previous)
    assert real.read_text() == '{"log-driver": "journald"}\n' and link.is_symlink()


def test_a_target_below_a_directory_others_may_write_is_unsafe(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "docker").mkdir()
    found = _relocation.unsafe_ancestors(str(shared / "docker" / "new"))
    assert found == [
        "%s is writable by group and others (mode 0777), so someone other than root could "
        "replace %s (as a symlink to /etc, say) while the data is moved"
        % (shared, shared / "docker")
    ]
    # A name not taken yet can be taken first, sticky directory or not.
    os.chmod(shared, 0o1777)
    missing = _relocation.unsafe_ancestors(str(shared / "new"))
    assert len(missing) == 1 and "could create %s" % (shared / "new") in missing[0]


def test_a_sticky_directory_protects_the_entries_root_owns(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "docker").mkdir()
    assert _relocation.unsafe_ancestors(str(shared / "docker")) == []
    os.chown(shared / "docker", 65534, 65534)
    (shared / "docker" / "sub").mkdir()
    found = _relocation.unsafe_ancestors(str(shared / "docker" / "sub"))
    # Its owner may rename it, and replace anything inside it.
    assert len(found) == 2 and "belongs to uid 65534" in found[1]


def test_missing_parents_are_made_roots_and_0755(tmp_path):
    os.umask(0o077)
    try:
        _relocation.make_parents(str(tmp_path / "a" / "b" / "docker"))
    finally:
        os.umask(0o022)
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        st = os.stat(directory)
        assert (st.st_mode & 0o7777, st.st_uid) == (0o755, 0)
    assert not (tmp_path / "a" / "b" / "docker").exists()


class EngineThatChangesOnTheTarget(FakeEngine):
    """An engine that starts on the new root with another driver, or without something it had
    (a move that lost a layer store, a volume, an image)."""

    def __init__(self, root, on_target):
        super().__init__(root)
        self.target = None
        self.on_target = on_target

    def info(self):
        info = super().info()
        if self.root == self.target:
            info.update(self.on_target.get("info", {}))
        return info

    def call(self, method, path):
        answer = super().call(method, path)
        if self.root == self.target:
            lost = self.on_target.get("lost")
            if lost and path.startswith(lost):
                return [] if isinstance(answer, list) else {"Volumes": []}
        return answer


@pytest.mark.parametrize(
    "on_target, message",
    [
        ({"info": {"Driver": "vfs"}}, "the engine reports storage driver vfs, not overlay2"),
        ({"info": {"DockerRootDir": "/elsewhere"}}, "the engine reports data-root /elsewhere"),
        ({"lost": "/images"}, "1 images are missing after the move: sha256:img"),
        ({"lost": "/volumes"}, "1 volumes are missing after the move: data"),
        ({"lost": "/containers"}, "1 containers are missing after the move: c1"),
    ],
)
def test_an_engine_that_is_not_what_it_was_after_the_start_is_rolled_back(
    tmp_path, on_target, message
):
    engine = EngineThatChangesOnTheTarget(str(tmp_path / "source"), on_target)
    relocation, config = _relocation_for(tmp_path, engine)
    engine.target = relocation.target
    with pytest.raises(RelocationError, match=re.escape(message) + ".*rolled back: daemon.json"):
        relocation.run()
    assert config.root == relocation.source
    assert engine.running and engine.root == relocation.source


def test_an_engine_someone_else_starts_before_the_switch_stops_the_move(tmp_path):
    # Socket activation or a service manager's restart brings the engine back on the source
    # while the copy is checked: switching under it would leave it holding the old tree.
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config = _relocation_for(tmp_path, engine)

    def started_elsewhere(name):
        engine.calls.append(name)
        if name == "after-verify":
            engine.running = True

    relocation.checkpoint = started_elsewhere
    with pytest.raises(RelocationError, match="an engine answers again although this run stop"):
        relocation.run()
    assert config.root == relocation.source
    assert "during-switch" not in engine.calls


class FakeContainerd:
    """The host's containerd: its service, its configured root, and the root it runs on."""

    shown_path = "/etc/containerd/config.toml"

    def __init__(self, source, calls, switch_fails=False):
        self.configured = source
        self.running_root = source
        self.calls = calls
        self.switch_fails = switch_fails
        # What still runs on layers under the old root once containerd stopped.
        self.layer_users = []

    def stop(self):
        self.calls.append("containerd stop")
        self.running_root = None

    def start(self):
        self.calls.append("containerd start")
        self.running_root = self.configured

    def restart(self):
        self.calls.append("containerd restart")
        self.running_root = self.configured

    def current(self):
        return 'version = 2\nroot = "%s"\n' % self.configured

    def switch(self, root):
        if self.switch_fails:
            raise ContainerdError("/etc/containerd/config.toml imports other files")
        self.calls.append("containerd switch")
        previous, self.configured = self.current(), root
        return previous

    def restore(self, previous):
        self.configured = previous.split('"')[1]

    def describe(self, source, target):
        return "containerd's root is %s" % target

    def runs_on(self, root):
        return self.running_root == root


def _with_containerd(tmp_path, engine, **fake):
    relocation, config = _relocation_for(tmp_path, engine)
    source = tmp_path / "containerd"
    source.mkdir()
    containerd = FakeContainerd(str(source), engine.calls, **fake)
    relocation.containerd = _relocation.ContainerdRoot(
        str(source),
        str(tmp_path / "new-containerd"),
        FakeCopy(),
        containerd,
        containerd,
        containerd.runs_on,
        layer_users=lambda: containerd.layer_users,
    )
    return relocation, config, containerd


def test_containerd_root_moves_with_the_data_root_in_one_transaction(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config, containerd = _with_containerd(tmp_path, engine)
    result = relocation.run()
    calls = [call for call in engine.calls if not call.startswith(("during", "before", "after"))]
    # containerd stops after the engine, its root is switched before daemon.json, and it
    # starts again before the engine.
    assert calls == ["stop", "containerd stop", "containerd switch", "containerd start", "start"]
    assert containerd.running_root == relocation.containerd.target
    assert config.root == relocation.target
    kept = result["containerd_root_kept_at"]
    assert kept.startswith(str(tmp_path / "containerd.relocated-")) and os.path.isdir(kept)
    assert relocation.containerd.copy.runs == 2  # bulk copy and final pass
    assert any("containerd's root is" in step for step in relocation.steps)


def test_an_engine_that_fails_on_the_new_roots_puts_both_back(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"), start_fails_on=str(tmp_path / "target"))
    relocation, config, containerd = _with_containerd(tmp_path, engine)
    with pytest.raises(RelocationError, match="rolled back: containerd's configuration restored"):
        relocation.run()
    assert containerd.configured == relocation.containerd.source
    assert containerd.running_root == relocation.containerd.source
    assert config.root == relocation.source and engine.root == relocation.source
    # containerd is back on its old root before the engine starts again.
    assert engine.calls[-2:] == ["containerd restart", "start"]
    assert os.path.isdir(relocation.containerd.source)


def test_containerd_config_that_cannot_be_written_changes_nothing(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config, containerd = _with_containerd(tmp_path, engine, switch_fails=True)
    with pytest.raises(RelocationError, match="imports other files; rolled back"):
        relocation.run()
    assert config.root == relocation.source and engine.root == relocation.source
    assert containerd.configured == relocation.containerd.source
    assert containerd.running_root == relocation.containerd.source
    assert engine.running


def test_an_image_that_lost_its_tag_is_missing():
    before = {"images": ["sha256:a"], "tags": ["web:1@sha256:a", "web:latest@sha256:a"]}
    after = {"images": ["sha256:a"], "tags": ["web:1@sha256:a"]}
    assert inventory_problems(before, after) == [
        "1 image tags are missing after the move: web:latest"
    ]


def test_a_containerd_stop_that_fails_in_the_roll_back_still_restores_its_file(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"), start_fails_on=str(tmp_path / "target"))
    relocation, config, containerd = _with_containerd(tmp_path, engine)
    stops = []

    def stop():
        stops.append(containerd.running_root)
        if len(stops) > 1:  # the roll-back's stop
            raise ContainerdError("systemctl stop containerd.service timed out")
        containerd.running_root = None

    containerd.stop = stop
    with pytest.raises(RelocationError, match="containerd's configuration restored, daemon.json"):
        relocation.run()
    assert containerd.configured == relocation.containerd.source
    assert config.root == relocation.source


def test_containers_left_running_on_containerds_layers_stop_the_move(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config, containerd = _with_containerd(tmp_path, engine)
    containerd.layer_users = [
        "/run/containerd/io.containerd.runtime.v2.task/k8s.io/x/rootfs is an overlay mount of layers there"
    ]
    with pytest.raises(
        RelocationError, match="containers still run on layers in containerd's root"
    ):
        relocation.run()
    assert "containerd switch" not in engine.calls
    assert containerd.configured == relocation.containerd.source
    assert containerd.running_root == relocation.containerd.source
    assert config.root == relocation.source and engine.running


def test_a_run_killed_between_daemon_json_and_containerds_file_is_finished(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, config, containerd = _with_containerd(tmp_path, engine)

    def killed(name):
        engine.calls.append(name)
        if name == "during-switch":
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after it runs

    relocation.checkpoint = killed
    with pytest.raises(KeyboardInterrupt):
        relocation.run()
    journal = read_journal(relocation.target)
    assert journal["phase"] == "switching" and config.root == relocation.target
    assert containerd.configured == relocation.containerd.source  # not switched yet
    assert journal["containerd"]["was_running"] is True

    # The next run finds the data-root switched and finishes, containerd's part included.
    again, _config = _relocation_for(tmp_path, engine, config=config)
    again.containerd = _relocation.ContainerdRoot(
        relocation.containerd.source,
        relocation.containerd.target,
        None,
        containerd,
        containerd,
        containerd.runs_on,
        layer_users=lambda: [],
    )
    again.checkpoint = engine.calls.append
    again.resume_switched(journal)
    again.finish(journal["engine_was_running"], journal["inventory"])
    assert containerd.configured == relocation.containerd.target
    assert containerd.running_root == relocation.containerd.target
    assert engine.root == relocation.target and engine.running


def test_metadata_check_names_a_directory_it_cannot_use(tmp_path):
    missing = str(tmp_path / "missing")
    assert _relocation.metadata_problems(missing) == [
        "cannot create a directory in %s: No such file or directory" % missing
    ]


def test_metadata_check_names_what_the_filesystem_refuses(tmp_path, monkeypatch):
    def refuse_trusted(path, name, value):
        if name.startswith("trusted."):
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    def refuse_nodes(path, mode, device):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_relocation.os, "setxattr", refuse_trusted)
    monkeypatch.setattr(_relocation.os, "mknod", refuse_nodes)
    directory = str(tmp_path)
    assert _relocation.metadata_problems(directory) == [
        "the filesystem of %s does not keep trusted.* extended attributes: Operation not "
        "supported" % directory,
        "the filesystem of %s cannot hold device nodes (overlay whiteouts): Operation not "
        "permitted (mounted nodev?)" % directory,
    ]
    assert os.listdir(directory) == []


class ConfirmedEngine(FakeEngine):
    """An engine already started after the switch, for the final checks alone."""

    def __init__(self, root, driver="overlay2", images=("sha256:img",)):
        super().__init__(root)
        self.driver = driver
        self.images = images

    def info(self):
        return {"DockerRootDir": self.root, "Driver": self.driver}

    def call(self, method, path):
        if path.startswith("/images"):
            return [{"Id": image} for image in self.images]
        return super().call(method, path)


def _confirming(tmp_path, config=None):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, _config = _relocation_for(tmp_path, engine, config=config)
    os.makedirs(relocation.target)
    before = _relocation.engine_inventory(engine)
    return relocation, before


def test_the_final_check_takes_an_engine_with_everything_it_had(tmp_path):
    relocation, before = _confirming(tmp_path)
    engine = ConfirmedEngine(relocation.target)
    assert relocation._confirm(engine, before) == []
    assert relocation._confirm(engine, None) == []


@pytest.mark.parametrize(
    "engine, message",
    [
        (
            dict(driver="vfs", images=()),
            # What is wrong with the engine is said first; its inventory is not trusted then.
            "the engine reports storage driver vfs, not overlay2",
        ),
        (dict(images=()), "1 images are missing after the move: sha256:img"),
    ],
)
def test_the_final_check_names_what_the_engine_lacks(tmp_path, engine, message):
    relocation, before = _confirming(tmp_path)
    with pytest.raises(RelocationError) as error:
        relocation._confirm(ConfirmedEngine(relocation.target, **engine), before)
    assert str(error.value) == message


def test_the_final_check_refuses_an_engine_on_another_root(tmp_path):
    relocation, before = _confirming(tmp_path)
    with pytest.raises(RelocationError) as error:
        relocation._confirm(ConfirmedEngine(relocation.source, driver="vfs"), before)
    assert str(error.value) == (
        "the engine reports data-root %s, not %s; the engine reports storage driver vfs, not "
        "overlay2" % (relocation.source, relocation.target)
    )


class RemappedEngine(ConfirmedEngine):
    """An engine under userns-remap: /info names <data-root>/<uid>.<gid>."""

    def info(self):
        return {
            "DockerRootDir": os.path.join(self.root, "100000.100000"),
            "Driver": self.driver,
            "SecurityOptions": ["name=seccomp,profile=default", "name=userns"],
        }


def test_the_final_check_takes_the_data_root_of_an_engine_under_userns_remap(tmp_path):
    relocation, before = _confirming(tmp_path)
    assert relocation._confirm(RemappedEngine(relocation.target), before) == []
    with pytest.raises(RelocationError) as error:
        relocation._confirm(RemappedEngine(relocation.source), before)
    assert str(error.value) == "the engine reports data-root %s/100000.100000, not %s" % (
        relocation.source,
        relocation.target,
    )


class BindMountConfig(FakeConfig):
    moves_data_root = False


def test_a_bind_mount_over_the_old_path_must_show_the_copy(tmp_path):
    relocation, before = _confirming(tmp_path, BindMountConfig(str(tmp_path / "source")))
    engine = ConfirmedEngine(relocation.source)
    with pytest.raises(RelocationError) as error:
        relocation._confirm(engine, before)
    assert str(error.value) == "%s does not show the copy at %s" % (
        relocation.source,
        relocation.target,
    )
    os.rmdir(relocation.source)
    os.symlink(relocation.target, relocation.source)
    assert relocation._confirm(engine, before) == []


def test_the_final_check_refuses_containerd_on_its_old_root(tmp_path):
    engine = FakeEngine(str(tmp_path / "source"))
    relocation, _config, containerd = _with_containerd(tmp_path, engine)
    os.makedirs(relocation.target)
    before = _relocation.engine_inventory(engine)
    with pytest.raises(RelocationError) as error:
        relocation._confirm(ConfirmedEngine(relocation.target), before)
    assert str(error.value) == (
        "containerd does not run on its new root %s (its metadata database there is not open)"
        % relocation.containerd.target
    )
    containerd.running_root = relocation.containerd.target
    assert relocation._confirm(ConfirmedEngine(relocation.target), before) == []


def test_a_target_that_is_a_bind_mount_of_the_source_is_refused(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    alias = tmp_path / "alias"
    alias.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "2 1 8:1 %s %s rw - ext4 /dev/sda1 rw\n" % (source, alias)
    )
    target = str(alias / "docker")
    assert _relocation.bind_alias_problems(str(source), target, str(mountinfo)) == [
        "path %s is, through a bind mount, the directory %s of the filesystem that holds the "
        "current data-root %s (there %s): the copy would write into what it reads"
        % (target, source / "docker", source, source)
    ]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _relocation.bind_alias_problems(str(source), str(elsewhere / "d"), str(mountinfo)) == []
    other_device = tmp_path / "mountinfo-2"
    other_device.write_text(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "2 1 8:2 %s %s rw - ext4 /dev/sdb1 rw\n" % (source, alias)
    )
    assert _relocation.bind_alias_problems(str(source), target, str(other_device)) == []


def test_a_target_that_is_a_link_to_a_parent_of_the_source_is_refused(tmp_path):
    source = tmp_path / "data" / "source"
    source.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "data")
    problems = _problems(str(source), str(link))
    assert "the current data-root %s is inside path %s" % (source, link) in problems


@pytest.mark.parametrize(
    "mode, who",
    [(0o775, "group (mode 0775)"), (0o757, "others (mode 0757)"), (0o777, "group and others")],
)
def test_an_unsafe_parent_says_who_may_write_it(tmp_path, mode, who):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    (shared / "docker").mkdir()
    found = _relocation.unsafe_ancestors(str(shared / "docker"))
    assert len(found) == 1 and ("%s is writable by %s" % (shared, who)) in found[0]


class EngineWithStoppedContainers(ConfirmedEngine):
    """c1 ran before the move and does not now; c2 is gone."""

    def __init__(self, root):
        super().__init__(root)
        self.started = []

    def call(self, method, path):
        if path.startswith("/containers"):
            state = "running" if "c1" in self.started else "exited"
            return [{"Id": "c1", "State": state}]
        return super().call(method, path)


def test_containers_that_ran_before_are_started_again_and_named(tmp_path):
    relocation, before = _confirming(tmp_path)
    engine = EngineWithStoppedContainers(relocation.target)
    relocation.start_container = lambda client, container: engine.started.append(container)
    assert relocation._confirm(engine, before) == ["c1"]
    assert engine.started == ["c1"]
    gone = dict(before, running=["c1", "c2"], containers=["c1", "c2"])
    engine.started = []
    with pytest.raises(RelocationError, match="1 containers are missing after the move: c2"):
        relocation._confirm(engine, gone)
    assert engine.started == ["c1"]
    assert relocation._start_stopped(engine, {}) == []
