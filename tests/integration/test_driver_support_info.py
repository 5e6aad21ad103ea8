"""driver_support_info against the real kernel, real filesystems and a real dockerd.

For each backing filesystem the module's verdict on every driver must equal what a private
dockerd (Debian's docker.io) does when started there with that --storage-driver: it starts with
that driver, or it refuses. Its "would pick" must equal the driver dockerd takes with none set,
and, on engines that have it, with the containerd image store turned on. Two real engines:
the host's 20.10 (bookworm) and 28.5 (forky, run chrooted in its own root filesystem).
"""

import json
import os

import pytest
from ansible_module import run_module

pytestmark = pytest.mark.integration

DRIVERS_TRIED = ("overlay2", "aufs", "btrfs", "vfs", "zfs", "overlay", "devicemapper")
BACKINGS = ("ext4", "xfs", "btrfs", "tmpfs", "ext2", "overlay")


@pytest.fixture(scope="module")
def backing(request, make_loopfs_module, make_overlay_module):
    """A fresh filesystem of the requested kind; for "overlay", a directory inside an overlay mount."""
    kind = request.param
    if kind == "overlay":
        base = make_loopfs_module("ext4", size_mb=512)
        mount = make_overlay_module(os.path.join(base.mount_point, "ovl"))
        return kind, mount.merged
    return kind, make_loopfs_module(kind, size_mb=512).mount_point


@pytest.fixture(params=["20.10", "28.5"])
def engine(request):
    """The engine under test: None for the host's dockerd 20.10, else the root it runs from."""
    if request.param == "20.10":
        return None
    return request.getfixturevalue("forky_engine")


def _dockerd_outcome(start_dockerd, data_root, driver=None, engine=None, config_file=None):
    daemon = start_dockerd(data_root, storage_driver=driver, engine=engine, config_file=config_file)
    try:
        if not daemon.started:
            return None, daemon.refusal
        return daemon.info()["Driver"], None
    finally:
        daemon.stop()


@pytest.mark.parametrize("backing", BACKINGS, indirect=True)
def test_verdicts_match_dockerd(backing, engine, start_dockerd, tmp_path):
    kind, mount_point = backing
    # Each engine's data-roots of its own: the filesystem is shared by both engines' runs.
    prefix = os.path.join(mount_point, "docker-%s-" % ("20.10" if engine is None else "28.5"))
    args = {"path": prefix + "auto"}
    if engine is not None:
        args["engine_version"] = engine.version
    result = run_module("driver_support_info", args)
    assert not result.get("failed"), result.get("msg")
    if engine is not None:
        assert result["engine"]["version"].startswith("28.5"), result["engine"]
    assert result["checked_path"] == mount_point
    expected_type = "ext2" if kind == "ext2" else kind
    assert result["backing_filesystem"]["type"] == expected_type
    leftovers = [
        name for name in os.listdir(mount_point) if name.startswith(".dockerhost-storage-probe")
    ]
    assert not leftovers, "the probe left its directory behind"

    mismatches = []
    for driver in DRIVERS_TRIED:
        picked, refusal = _dockerd_outcome(start_dockerd, prefix + driver, driver, engine)
        started = picked == driver
        verdict = result["drivers"][driver]
        if verdict["supported"] is not started:
            mismatches.append(
                "%s on %s: module says supported=%s (%s); dockerd %s"
                % (
                    driver,
                    kind,
                    verdict["supported"],
                    "; ".join(verdict["reasons"]),
                    "started" if started else "refused: %s" % refusal,
                )
            )
        if not started:
            assert verdict["reasons"], (
                "%s refused by dockerd but the module gives no reason" % driver
            )

    picked, refusal = _dockerd_outcome(start_dockerd, prefix + "auto", engine=engine)
    _compare_pick(mismatches, "no driver set on %s" % kind, result["would_pick"], picked, refusal)

    if engine is not None:
        # The containerd image store: the storage driver is then a containerd snapshotter.
        config = tmp_path / "daemon.json"
        config.write_text(json.dumps({"features": {"containerd-snapshotter": True}}))
        store_root = prefix + "containerd-store"
        store = run_module(
            "driver_support_info",
            {"path": store_root, "engine_version": engine.version, "config_path": str(config)},
        )
        assert store["would_pick"]["image_store"] == "containerd", store["would_pick"]
        # Where overlay cannot mount, dockerd still takes overlayfs and every container then
        # fails to start: the module says so.
        cannot_mount = store["drivers"]["overlay2"]["supported"] is False
        warned = any("every container will fail" in w for w in store["would_pick"]["warnings"])
        assert warned is cannot_mount, store["would_pick"]
        picked, refusal = _dockerd_outcome(
            start_dockerd, store_root, engine=engine, config_file=str(config)
        )
        _compare_pick(
            mismatches, "containerd image store on %s" % kind, store["would_pick"], picked, refusal
        )
    assert not mismatches, "\n".join(mismatches)


def _compare_pick(mismatches, case, would_pick, picked, refusal):
    if would_pick["driver"] != picked:
        mismatches.append(
            "%s: module would pick %s (%s); dockerd picked %s %s"
            % (case, would_pick["driver"], would_pick["reason"], picked, refusal or "")
        )


def test_prior_driver_state_decides_and_two_make_dockerd_refuse(
    make_loopfs, start_dockerd, busybox_image, import_test_image
):
    fs = make_loopfs("btrfs", size_mb=512)
    data_root = os.path.join(fs.mount_point, "docker")
    # A daemon pinned to overlay2 leaves overlay2 state on a btrfs filesystem, where 20.10
    # would otherwise pick btrfs.
    picked, refusal = _dockerd_outcome(start_dockerd, data_root, "overlay2")
    assert picked == "overlay2", refusal
    assert os.listdir(os.path.join(data_root, "overlay2"))

    result = run_module("driver_support_info", {"path": data_root})
    assert result["prior_drivers"] == ["overlay2"]
    assert result["would_pick"]["driver"] == "overlay2"
    assert _dockerd_outcome(start_dockerd, data_root)[0] == "overlay2"

    # Now btrfs state as well (an image stored by the btrfs driver; an empty btrfs/ directory
    # does not count): dockerd refuses to choose, and so does the module.
    daemon = start_dockerd(data_root, storage_driver="btrfs")
    daemon.assert_started()
    import_test_image(daemon, busybox_image)
    daemon.stop()
    result = run_module("driver_support_info", {"path": data_root})
    assert sorted(result["prior_drivers"]) == ["btrfs", "overlay2"]
    assert result["would_pick"]["driver"] is None
    picked, refusal = _dockerd_outcome(start_dockerd, data_root)
    assert picked is None
    assert "several" in refusal and "graphdrivers" in refusal


def test_required_driver_that_cannot_run_fails_with_reasons(make_loopfs):
    fs = make_loopfs("ext4", size_mb=256)
    result = run_module("driver_support_info", {"path": fs.mount_point, "required": "btrfs"})
    assert result["failed"] is True
    assert result["msg"].startswith("btrfs cannot run on %s (ext4" % fs.mount_point)
    assert "btrfs needs the data-root on a btrfs filesystem (it is on ext4)" in result["msg"]
    ok = run_module("driver_support_info", {"path": fs.mount_point, "required": "overlay2"})
    assert not ok.get("failed") and ok["changed"] is False


@pytest.mark.parametrize(
    "args, message",
    [
        ({"path": "relative/docker"}, "path must be absolute, got 'relative/docker'"),
        (
            {"path": "/etc/hostname"},
            "path /etc/hostname is not a directory; give the data-root directory",
        ),
        ({"required": "devicemapper2"}, "value of required must be one of: overlay2, aufs"),
        ({"engine_version": "latest"}, "engine_version: engine version 'latest' is not a version"),
        ({"docker_host": "tcp://127.0.0.1:2375"}, "docker_host must be a unix socket"),
    ],
)
def test_bad_input_gets_a_clear_message(args, message):
    result = run_module("driver_support_info", args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert "Traceback" not in result.get("module_stderr", "")


def test_check_mode_and_facts(tmp_path):
    result = run_module("driver_support_info", {"path": str(tmp_path)}, check=True)
    assert result["changed"] is False
    facts = result["ansible_facts"]["docker_storage_support"]
    assert facts["drivers"]["overlay2"] == result["drivers"]["overlay2"]
    assert facts["backing_filesystem"]["d_type"] is True
    assert os.listdir(str(tmp_path)) == []


def test_read_only_filesystem_refuses_every_driver(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64, mount_options=("ro",))
    result = run_module("driver_support_info", {"path": fs.mount_point})
    assert all(v["supported"] is False for v in result["drivers"].values())
    assert "mounted read-only" in result["drivers"]["vfs"]["reasons"][0]


def test_engine_version_option_plans_an_upgrade(make_loopfs):
    fs = make_loopfs("btrfs", size_mb=256)
    now = run_module("driver_support_info", {"path": fs.mount_point, "engine_version": "20.10"})
    later = run_module("driver_support_info", {"path": fs.mount_point, "engine_version": "24.0"})
    assert now["would_pick"]["driver"] == "btrfs"
    assert later["would_pick"]["driver"] == "overlay2"
    assert later["drivers"]["overlay"]["removed"] is True
    assert later["engine"]["version_source"] == "option"


def test_d_type_off_refuses_a_new_store_and_keeps_an_existing_one_like_dockerd(
    make_loopfs, start_dockerd
):
    """ext4 without the filetype feature: dockerd 20.10 refuses overlay2 in a new data-root, and
    runs it, with a warning, where overlay2/ is already there and not empty."""
    fs = make_loopfs("ext4", size_mb=256, features=["^filetype"])
    fresh = os.path.join(fs.mount_point, "fresh")
    existing = os.path.join(fs.mount_point, "existing")
    os.makedirs(os.path.join(existing, "overlay2", "l"))

    for data_root, expected in ((fresh, False), (existing, True)):
        result = run_module("driver_support_info", {"path": data_root, "engine_version": "20.10"})
        assert not result.get("failed"), result.get("msg")
        assert result["backing_filesystem"]["d_type"] is False
        verdict = result["drivers"]["overlay2"]
        picked, refusal = _dockerd_outcome(start_dockerd, data_root, "overlay2")
        assert (picked == "overlay2") is expected, refusal
        assert verdict["supported"] is expected, verdict
        if expected:
            assert any("existing overlay2 store" in w for w in verdict["warnings"])
        else:
            assert "d_type" in refusal and "d_type" in " ".join(verdict["reasons"])

    later = run_module("driver_support_info", {"path": existing, "engine_version": "23.0"})
    assert later["drivers"]["overlay2"]["supported"] is False
