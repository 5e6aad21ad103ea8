"""daemon_config for real: the module writes daemon.json files, a private dockerd runs on them,
and for every setting the module refuses, a private dockerd refuses to start too.

Each test points ``path`` at a daemon.json of its own; the host's /etc/docker is never touched.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest
from ansible_module import run_module, start_module
from daemon_json_corpus import CASES, read_bad_file
from harness.config_dockerd import start_dockerd_with_config_data_root


@pytest.fixture
def diff_mode(monkeypatch):
    """Run ansible as ``--diff`` does (run_module passes the environment on)."""
    monkeypatch.setenv("ANSIBLE_DIFF_ALWAYS", "1")


def write_config(path, config):
    """Write a daemon.json the way an operator might have, not as the module renders it."""
    text = json.dumps(config, separators=(", ", ": "))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return text.encode()


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def as_nobody(*argv):
    """Run ``argv`` as an unprivileged user (nobody, no supplementary groups)."""
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv],
        capture_output=True,
        env={"LANG": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        check=False,
    )


def base_config(tmp_path):
    """What every daemon.json given to a private dockerd here needs (see harness/dockerd.py):
    20.10 derives its ID from a trust key, /etc/docker/key.json unless the file says otherwise."""
    return {"deprecated-key-path": str(tmp_path / "key.json")}


UNRELATED = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3", "labels": "site,rack"},
    "registry-mirrors": ["https://mirror.invalid"],
    "default-runtime": "test-runc",
    "runtimes": {"test-runc": {"path": "/usr/sbin/runc", "runtimeArgs": ["--debug"]}},
    "features": {"buildkit": True},
}


def test_written_config_runs_and_keeps_every_other_key(
    tmp_path, make_loopfs, start_dockerd, diff_mode
):
    fs = make_loopfs("ext4", size_mb=256)
    data_root = os.path.join(fs.mount_point, "docker-data")
    path = str(tmp_path / "etc" / "daemon.json")
    os.makedirs(os.path.dirname(path))
    original = dict(base_config(tmp_path), **UNRELATED)
    original_bytes = write_config(path, original)
    os.chmod(path, 0o640)
    wanted = {"config_path": path, "storage_driver": "overlay2", "data_root": data_root}

    check = run_module("daemon_config", dict(wanted), check=True)
    assert check["changed"] is True, check
    assert read_bytes(path) == original_bytes
    assert sorted(check["changed_keys"]) == ["data-root", "storage-driver"]
    assert check["diff"]["before"] == original_bytes.decode()
    assert '"storage-driver": "overlay2"' in check["diff"]["after"]
    assert '"data-root": "%s"' % data_root in check["diff"]["after"]

    first = run_module("daemon_config", dict(wanted, backup=True))
    assert first["changed"] is True, first
    assert first["restart_required"] is True
    assert read_bytes(first["backup_file"]) == original_bytes
    written = json.loads(read_bytes(path))
    # Every other key, nested values included, and the order of keys survive.
    assert list(written) == list(original) + ["storage-driver", "data-root"]
    for key, value in original.items():
        assert written[key] == value, key
    assert first["config"] == written
    assert first["diff"]["after"] == read_bytes(path).decode()
    assert os.stat(path).st_mode & 0o7777 == 0o640  # an existing file keeps its mode

    second = run_module("daemon_config", dict(wanted))
    assert second["changed"] is False, second
    assert second["changed_keys"] == []
    assert second["restart_required"] is False

    daemon = start_dockerd_with_config_data_root(start_dockerd, path, data_root)
    daemon.assert_started()
    info = daemon.info()
    assert info["Driver"] == "overlay2"
    assert info["DockerRootDir"] == data_root
    assert info["LoggingDriver"] == "json-file"
    assert info["DefaultRuntime"] == "test-runc"
    assert "test-runc" in info["Runtimes"]
    assert info["RegistryConfig"]["Mirrors"] == ["https://mirror.invalid/"]
    assert os.path.isdir(os.path.join(data_root, "overlay2"))


def test_new_file_and_directory_are_created_root_owned(tmp_path):
    path = str(tmp_path / "etc" / "docker" / "daemon.json")
    check = run_module("daemon_config", {"config_path": path, "storage_driver": "vfs"}, check=True)
    assert check["changed"] is True, check
    assert not os.path.exists(str(tmp_path / "etc"))

    result = run_module("daemon_config", {"config_path": path, "storage_driver": "vfs"})
    assert result["changed"] is True, result
    assert read_bytes(path) == b'{\n  "storage-driver": "vfs"\n}\n'
    file_stat = os.stat(path)
    assert (file_stat.st_mode & 0o7777, file_stat.st_uid, file_stat.st_gid) == (0o644, 0, 0)
    assert os.stat(os.path.dirname(path)).st_mode & 0o7777 == 0o755

    # The same data in another layout is left as it is: changed is decided on the data.
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"storage-driver":"vfs"}')
    again = run_module("daemon_config", {"config_path": path, "storage_driver": "vfs"})
    assert again["changed"] is False, again
    assert read_bytes(path) == b'{"storage-driver":"vfs"}'

    # A link to the file (as configuration management tools sometimes leave) stays a link.
    link = str(tmp_path / "daemon-link.json")
    os.symlink(path, link)
    removed = run_module("daemon_config", {"config_path": link, "remove": ["storage-driver"]})
    assert removed["changed"] is True and removed["config"] == {}
    assert os.readlink(link) == path
    assert read_bytes(path) == b"{}\n"
    assert sorted(os.listdir(os.path.dirname(path))) == ["daemon.json"]


def test_new_data_root_on_docker_29_pins_the_store_in_use(tmp_path, make_loopfs):
    fs = make_loopfs("ext4", size_mb=256)
    path = str(tmp_path / "daemon.json")
    write_config(path, {})
    result = run_module(
        "daemon_config",
        {
            "config_path": path,
            "data_root": os.path.join(fs.mount_point, "docker"),
            "engine_version": "29.0",
        },
        check=True,
    )
    # The host's engine runs overlay2 on its graphdriver store; an empty data-root would get
    # the containerd store on 29 unless the driver is pinned.
    assert result["changed"] is True, result
    assert result["pinned"]["key"] == "storage-driver"
    assert result["config"]["storage-driver"] == result["engine"]["running_driver"]
    assert any("image store does not switch" in w for w in result.get("warnings", []))
    assert result["changed_keys"] == ["storage-driver", "data-root"]

    # Asking for no driver while moving the data-root leaves the choice of store open: refused.
    write_config(path, {"storage-driver": "overlay2"})
    refused = run_module(
        "daemon_config",
        {
            "config_path": path,
            "data_root": os.path.join(fs.mount_point, "docker"),
            "engine_version": "29.0",
            "remove": ["storage-driver"],
        },
    )
    assert refused.get("failed") is True, refused
    assert "set containerd_snapshotter to choose it explicitly" in refused["msg"]


def refusal(start_dockerd, tmp_path, data_root, config, extra_args=()):
    """Start a private dockerd on ``config`` (written to a file of its own); return its refusal."""
    path = str(tmp_path / "dockerd-check.json")
    write_config(path, dict(base_config(tmp_path), **config))
    daemon = start_dockerd_with_config_data_root(
        start_dockerd, path, data_root, extra_args=extra_args
    )
    assert not daemon.started, "dockerd started on %s" % config
    return daemon.refusal


def assert_refused_and_untouched(path, args, *phrases):
    before = read_bytes(path)
    result = run_module("daemon_config", dict(args, config_path=path))
    assert result.get("failed") is True, result
    for phrase in phrases:
        assert phrase in result["msg"], result["msg"]
    assert read_bytes(path) == before
    return result["msg"]


def test_dm_basesize_on_overlay2_is_refused_like_dockerd_does(tmp_path, make_loopfs, start_dockerd):
    fs = make_loopfs("ext4", size_mb=256)
    data_root = os.path.join(fs.mount_point, "docker")
    path = str(tmp_path / "daemon.json")
    write_config(path, base_config(tmp_path))
    wanted = {
        "storage_driver": "overlay2",
        "storage_opts": ["dm.basesize=20G"],
        "data_root": data_root,
    }
    assert_refused_and_untouched(
        path, wanted, "storage-opts: dm.basesize is not an option of the overlay2 driver"
    )
    reason = refusal(
        start_dockerd,
        tmp_path,
        data_root,
        {"storage-driver": "overlay2", "storage-opts": ["dm.basesize=20G"], "data-root": data_root},
    )
    assert "overlay2: unknown option dm.basesize" in reason


def test_overlay2_size_on_ext4_is_refused_like_dockerd_does(tmp_path, make_loopfs, start_dockerd):
    fs = make_loopfs("ext4", size_mb=256)
    data_root = os.path.join(fs.mount_point, "docker")
    path = str(tmp_path / "daemon.json")
    write_config(path, base_config(tmp_path))
    wanted = {
        "storage_driver": "overlay2",
        "storage_opts": ["overlay2.size=1G"],
        "data_root": data_root,
    }
    assert_refused_and_untouched(
        path, wanted, "overlay2.size needs the data-root on xfs mounted with pquota", " is ext4 "
    )
    reason = refusal(
        start_dockerd,
        tmp_path,
        data_root,
        {
            "storage-driver": "overlay2",
            "storage-opts": ["overlay2.size=1G"],
            "data-root": data_root,
        },
    )
    assert "overlay2.size" in reason


def test_overlay2_without_d_type_is_refused_like_dockerd_does(tmp_path, make_loopfs, start_dockerd):
    fs = make_loopfs("ext4", size_mb=256, features=["^filetype"])
    data_root = os.path.join(fs.mount_point, "docker")
    path = str(tmp_path / "daemon.json")
    write_config(path, base_config(tmp_path))
    wanted = {"storage_driver": "overlay2", "data_root": data_root}
    assert_refused_and_untouched(path, wanted, "storage-driver: overlay2 cannot run on", "d_type")
    reason = refusal(
        start_dockerd,
        tmp_path,
        data_root,
        {"storage-driver": "overlay2", "data-root": data_root},
    )
    assert "d_type" in reason


def test_flag_in_a_systemd_drop_in_conflicts_like_dockerd_says(
    tmp_path, make_loopfs, start_dockerd
):
    fs = make_loopfs("ext4", size_mb=256)
    data_root = os.path.join(fs.mount_point, "docker")
    host_root = tmp_path / "host"
    drop_in_dir = host_root / "etc" / "systemd" / "system" / "docker.service.d"
    drop_in_dir.mkdir(parents=True)
    (drop_in_dir / "10-storage.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// \\\n    --storage-driver=vfs\n"
    )
    path = str(tmp_path / "daemon.json")
    write_config(path, base_config(tmp_path))
    wanted = {"storage_driver": "overlay2", "data_root": data_root, "host_root": str(host_root)}
    assert_refused_and_untouched(
        path,
        wanted,
        "storage-driver is set in daemon.json",
        "--storage-driver vfs in /etc/systemd/system/docker.service.d/10-storage.conf:4",
    )
    warned = run_module("daemon_config", dict(wanted, config_path=path, conflicts="warn"))
    assert warned["changed"] is True, warned
    assert any("dockerd refuses to start" in w for w in warned["warnings"])
    assert warned["flags"][0]["where"] == "/etc/systemd/system/docker.service.d/10-storage.conf:4"

    reason = refusal(
        start_dockerd,
        tmp_path,
        data_root,
        {"storage-driver": "overlay2", "data-root": data_root},
        extra_args=("--storage-driver=vfs",),
    )
    assert "specified both as a flag and in the configuration file" in reason
    assert "storage-driver" in reason


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_is_named_and_left_alone(tmp_path, name):
    """Every file of the corpus (tests/support/daemon_json_corpus.py) is refused in words that
    name the file and the problem, never with a traceback, and is left as it was."""
    raw = read_bad_file(name)
    path = str(tmp_path / "daemon.json")
    with open(path, "wb") as handle:
        handle.write(raw)
    result = run_module(
        "daemon_config", {"config_path": path, "storage_driver": "vfs", "support_check": False}
    )
    assert result.get("failed") is True, result
    assert result["msg"].startswith(path + " "), result["msg"]
    for phrase in CASES[name].phrases:
        assert phrase in result["msg"], result["msg"]
    shown = json.dumps(result)
    assert "Traceback" not in shown and "MODULE FAILURE" not in shown, shown
    assert read_bytes(path) == raw
    assert sorted(os.listdir(str(tmp_path))) == ["daemon.json"]


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n].dockerd_refuses))
def test_dockerd_refuses_to_start_on_the_bad_file_too(tmp_path, start_dockerd, name):
    config = tmp_path / name
    config.write_bytes(read_bad_file(name))
    daemon = start_dockerd(tmp_path / "docker", config_file=config)
    assert not daemon.started, "dockerd started on %s" % name
    assert "unable to configure the Docker daemon with file %s" % config in daemon.refusal


def test_dockerd_reads_a_lone_surrogate_escape_as_the_replacement_character(
    tmp_path, start_dockerd
):
    # Why the module refuses the escape rather than keep it: dockerd would not read it as
    # written.
    config = tmp_path / "daemon.json"
    config.write_text(
        '{"deprecated-key-path": "%s", "labels": ["site=\\ud800"]}' % (tmp_path / "key.json")
    )
    daemon = start_dockerd(tmp_path / "docker", config_file=config)
    daemon.assert_started()
    assert daemon.info()["Labels"] == ["site=\ufffd"]


def test_storage_key_of_the_wrong_type_is_named_and_left_alone(tmp_path):
    path = str(tmp_path / "daemon.json")
    with open(path, "wb") as handle:
        handle.write(b'{"storage-opts": "overlay2.size=1G"}\n')
    message = assert_refused_and_untouched(
        path,
        {"storage_driver": "vfs", "support_check": False},
        "key storage-opts must be an array of strings",
    )
    assert path in message
    assert sorted(os.listdir(str(tmp_path))) == ["daemon.json"]


def test_directory_in_place_of_the_file_is_named(tmp_path):
    path = tmp_path / "daemon.json"
    path.mkdir()
    result = run_module("daemon_config", {"config_path": str(path), "storage_driver": "vfs"})
    assert result.get("failed") is True
    assert "%s is a directory, not a file" % path in result["msg"]
    assert os.listdir(str(path)) == []


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}\n')
    os.chmod(str(path), 0)
    # Root reads any file; without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH it reads as a
    # service account would.
    without_override = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
    result = run_module(
        "daemon_config",
        {"config_path": str(path), "storage_driver": "vfs"},
        wrapper=without_override,
    )
    assert result.get("failed") is True, result
    assert "cannot read %s: Permission denied" % path in result["msg"]
    os.chmod(str(path), 0o644)
    assert path.read_text() == '{"debug": true}\n'


PROXY = {"proxies": {"http-proxy": "http://builder:s3cret@proxy.example:3128"}}
BACKUP_NAME = re.compile(r"^daemon\.json\.(\d+)\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$")


@pytest.fixture
def reachable_dir():
    """A directory every user can reach (pytest's temporary directories are 0700)."""
    path = tempfile.mkdtemp(prefix="dockerhost-storage-test-", dir="/tmp")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def test_backup_is_readable_by_the_owner_only(reachable_dir):
    tmp_path = reachable_dir
    path = tmp_path / "daemon.json"
    original = write_config(str(path), PROXY)
    # Readable by the group nogroup; the copy must not be, nor by anyone else.
    os.chown(str(path), 0, 65534)
    os.chmod(str(path), 0o640)
    assert as_nobody("cat", str(path)).stdout == original

    result = run_module(
        "daemon_config",
        {"config_path": str(path), "storage_driver": "vfs", "support_check": False, "backup": True},
    )
    assert result.get("changed") is True, result
    backup = result["backup_file"]
    assert os.path.dirname(backup) == str(tmp_path)
    assert BACKUP_NAME.match(os.path.basename(backup)), backup
    assert read_bytes(backup) == original
    copied = os.lstat(backup)
    assert (oct(stat.S_IMODE(copied.st_mode)), copied.st_uid, copied.st_gid) == (
        oct(0o600),
        0,
        65534,
    )
    denied = as_nobody("cat", backup)
    assert denied.returncode != 0 and b"Permission denied" in denied.stderr, denied
    assert b"s3cret" not in denied.stdout
    # The file itself keeps its owner and mode.
    kept = os.stat(str(path))
    assert (stat.S_IMODE(kept.st_mode), kept.st_uid, kept.st_gid) == (0o640, 0, 65534)


def test_a_run_killed_while_it_backs_up_leaves_no_readable_copy(tmp_path):
    path = tmp_path / "daemon.json"
    # A large file (padding after the object) keeps the copy going long enough to be caught.
    text = json.dumps(PROXY) + " " * (64 * 1024 * 1024)
    path.write_text(text)
    os.chmod(str(path), 0o600)
    run = start_module(
        "daemon_config",
        {"config_path": str(path), "storage_driver": "vfs", "support_check": False, "backup": True},
    )
    modes, killed = {}, None
    deadline = time.monotonic() + 120
    try:
        while killed is None and time.monotonic() < deadline and run.running():
            for name in os.listdir(str(tmp_path)):
                found = BACKUP_NAME.match(name)
                if found:
                    try:
                        modes[name] = stat.S_IMODE(os.lstat(str(tmp_path / name)).st_mode)
                    except FileNotFoundError:
                        continue
                    # The name carries the module's process id: kill it right there.
                    killed = int(found.group(1))
                    try:
                        os.kill(killed, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    break
    finally:
        run.result()
    assert killed is not None, "no backup appeared while the module ran"
    left = {name: stat.S_IMODE(os.lstat(str(tmp_path / name)).st_mode) for name in modes}
    readable = {
        name: oct(mode) for name, mode in list(modes.items()) + list(left.items()) if mode & 0o077
    }
    assert readable == {}, "a copy of a 0600 file was readable by others: %s" % readable
    assert path.read_text() == text


def test_a_backup_that_cannot_be_made_fails_before_anything_is_written(tmp_path, make_loopfs):
    # A full filesystem: the copy cannot be written.
    fs = make_loopfs("tmpfs", size_mb=1)
    path = os.path.join(fs.mount_point, "daemon.json")
    original = write_config(path, dict(PROXY, padding="x" * 4096))
    filler = os.path.join(fs.mount_point, "filler")
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(handle, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(handle)
    args = {"config_path": path, "storage_driver": "vfs", "support_check": False, "backup": True}
    full = run_module("daemon_config", args)
    assert full.get("failed") is True, full
    assert "cannot back up %s to %s." % (path, path) in full["msg"], full["msg"]
    assert "No space left on device" in full["msg"]
    assert "free space" in full["msg"]
    assert "%s was not changed" % path in full["msg"]
    assert read_bytes(path) == original
    assert sorted(os.listdir(fs.mount_point)) == ["daemon.json", "filler"]

    # A directory the task may not write to: root without CAP_DAC_OVERRIDE, as a
    # hardened service account runs.
    directory = tmp_path / "etc"
    directory.mkdir()
    path = str(directory / "daemon.json")
    original = write_config(path, PROXY)
    os.chmod(str(directory), 0o555)
    without_override = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
    denied = run_module("daemon_config", dict(args, config_path=path), wrapper=without_override)
    os.chmod(str(directory), 0o755)
    assert denied.get("failed") is True, denied
    assert "cannot back up %s to %s." % (path, path) in denied["msg"], denied["msg"]
    assert "Permission denied" in denied["msg"]
    assert "make the directory writable" in denied["msg"]
    assert read_bytes(path) == original
    assert os.listdir(str(directory)) == ["daemon.json"]


@pytest.fixture(params=["26.1", "28.5"])
def validating_engine(request):
    """A real engine that has ``dockerd --validate``: trixie's 26.1 or forky's 28.5."""
    return request.getfixturevalue({"26.1": "trixie_engine", "28.5": "forky_engine"}[request.param])


def test_the_engines_own_validate_passes_a_good_file_and_stops_a_bad_one(
    validating_engine, tmp_path, make_loopfs, start_dockerd
):
    """With an engine of 23.0 or later installed, the candidate file goes through that engine's
    own ``dockerd --validate``. The module runs on the host with the engine's dockerd where it
    looks for one (/usr/local/sbin), run chrooted in the engine's root."""
    engine = validating_engine
    shim_dir = tmp_path / "sbin"
    shim_dir.mkdir()
    # The module's candidate file is written under ANSIBLE_REMOTE_TMP, which the engine must see.
    remote_tmp = tmp_path / "ansible-tmp"
    remote_tmp.mkdir()
    wrapper = engine.dockerd_on_search_path(str(shim_dir), [str(tmp_path)])
    environment = {"ANSIBLE_REMOTE_TMP": str(remote_tmp)}
    fs = make_loopfs("ext4", size_mb=256)
    data_root = os.path.join(fs.mount_point, "docker-data")
    path = str(tmp_path / "etc" / "daemon.json")
    os.makedirs(os.path.dirname(path))
    wanted = {
        "config_path": path,
        "storage_driver": "overlay2",
        "storage_opts": [],
        "data_root": data_root,
        # No engine answers here: the version comes from the installed dockerd.
        "docker_host": "unix://%s" % (tmp_path / "no-engine.sock"),
    }

    write_config(path, {"log-driver": "json-file", "log-opts": {"max-size": "10m"}})
    good = run_module("daemon_config", wanted, wrapper=wrapper, environment=environment)
    assert not good.get("failed"), good.get("msg")
    assert good["changed"] is True
    assert good["validated_by"] == "/usr/local/sbin/dockerd --validate"
    assert good["engine"]["version_source"] == "binary", good["engine"]
    assert engine.version.startswith(good["engine"]["version"]), good["engine"]
    daemon = start_dockerd_with_config_data_root(start_dockerd, path, data_root, engine=engine)
    daemon.assert_started()
    assert daemon.info()["Driver"] == "overlay2"
    assert daemon.info()["DockerRootDir"] == data_root
    daemon.stop()

    # A storage option this engine's --validate passes ("configuration OK") but its overlay2
    # refuses at start: the module's own rule stops it before anything is written.
    bad_option = "overlay2.mountopt=nodev"
    validate = subprocess.run(
        [str(shim_dir / "dockerd"), "--validate", "--config-file", path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0 and "configuration OK" in validate.stdout + validate.stderr
    before = read_bytes(path)
    refused = run_module(
        "daemon_config",
        dict(wanted, storage_opts=[bad_option]),
        wrapper=wrapper,
        environment=environment,
    )
    assert refused.get("failed") is True, refused
    assert "overlay2.mountopt is not an option of the overlay2 driver" in refused["msg"]
    assert read_bytes(path) == before
    daemon = start_dockerd(
        os.path.join(fs.mount_point, "docker-option"),
        storage_driver="overlay2",
        extra_args=["--storage-opt=" + bad_option],
        engine=engine,
    )
    assert not daemon.started and "unknown option overlay2.mountopt" in daemon.refusal

    # Settings the module does not own, which this engine refuses: a value of the wrong type,
    # and a key removed in 23.0 that an upgraded host's file still has.
    for setting, phrase in (
        ({"log-opts": {"max-size": 10}}, "cannot unmarshal number"),
        ({"cluster-store": "consul://localhost:8500"}, "cluster-store"),
    ):
        write_config(path, setting)
        before = read_bytes(path)
        refused = run_module("daemon_config", wanted, wrapper=wrapper, environment=environment)
        assert refused.get("failed") is True, refused
        assert "/usr/local/sbin/dockerd --validate refuses the new %s" % path in refused["msg"]
        assert phrase in refused["msg"], refused["msg"]
        assert "<candidate daemon.json>" in refused["msg"] or phrase == "cluster-store"
        assert read_bytes(path) == before
        assert sorted(os.listdir(os.path.dirname(path))) == ["daemon.json"]
        # The engine itself refuses to start on such a file.
        daemon = start_dockerd_with_config_data_root(start_dockerd, path, data_root, engine=engine)
        assert not daemon.started and phrase in daemon.refusal, daemon.refusal
