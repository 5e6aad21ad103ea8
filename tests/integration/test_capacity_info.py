"""capacity_info on real filesystems and a real dockerd, judged against df and du.

- The figures of ext4, xfs and btrfs loop filesystems equal ``df -B1`` and ``df -i`` for the
  same mount (read right after the module, with nothing written in between).
- An ext4 made with 4096 inodes, filled with empty files, turns ``warn`` and then ``fail`` at
  the counts the thresholds give, and ``fail_on_threshold`` then fails the task.
- The breakdown of a populated private dockerd's data-root equals ``du -x --inodes -s`` and
  ``du -x -s -B1``: hard links counted once, a running container's merged mount and a tmpfs
  inside the data-root left out.
"""

import os
import subprocess

import pytest
from ansible_module import run_module
from harness import run

pytestmark = pytest.mark.integration

# No engine answers here, so the module relies on its options alone.
NO_ENGINE = "unix:///run/dockerhost-test-no-engine.sock"


@pytest.fixture
def quiet_host(tmp_path):
    """Options that keep the host's own engine and containerd out of a run."""
    config = tmp_path / "containerd.toml"
    config.write_text('root = "%s"\n' % (tmp_path / "no-containerd"))
    return {"docker_host": NO_ENGINE, "containerd_config": str(config)}


def df(mount_point):
    """``df -B1`` and ``df -i`` of a mount as the module reports them."""
    out = run(
        ["df", "-B1", "--output=size,used,avail,itotal,iused,iavail,target", mount_point]
    ).stdout.splitlines()[1]
    size, used, avail, itotal, iused, iavail = (int(field) for field in out.split()[:6])
    return {"total": size, "used": used, "available": avail}, {
        "total": itotal,
        "used": iused,
        "free": iavail,
    }


def write_files(directory, count, size=0, start=0):
    for index in range(start, start + count):
        with open(os.path.join(directory, "f%d" % index), "wb") as handle:
            handle.write(b"x" * size)


def module_ok(args):
    result = run_module("capacity_info", args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    return result


@pytest.mark.parametrize(
    "fstype, mkfs_args",
    [("ext4", ()), ("xfs", ("-i", "maxpct=5")), ("btrfs", ())],
)
def test_figures_equal_df(make_loopfs, quiet_host, fstype, mkfs_args):
    fs = make_loopfs(fstype, mkfs_args=mkfs_args)
    data = os.path.join(fs.mount_point, "docker")
    os.mkdir(data)
    write_files(data, 300, size=5000)
    os.sync()

    result = module_ok(dict(quiet_host, data_root=data))
    bytes_df, inodes_df = df(fs.mount_point)

    entry = result["filesystems"][0]
    assert (entry["path"], entry["role"], entry["mount_point"]) == (
        data,
        "data_root",
        fs.mount_point,
    )
    assert (entry["fstype"], entry["device"]) == (fstype, fs.device)
    assert entry["separate_from_root"] is True
    assert {key: entry["bytes"][key] for key in bytes_df} == bytes_df
    if fstype == "btrfs":
        # btrfs counts no inodes: df -i shows 0 0 0, and inodes are never judged
        assert inodes_df == {"total": 0, "used": 0, "free": 0}
        assert entry["inodes"]["limited"] is False
    else:
        assert {key: entry["inodes"][key] for key in inodes_df} == inodes_df
        assert entry["inodes"]["limited"] is True
    assert entry["status"] == "ok"
    assert result["ansible_facts"]["docker_storage_capacity"]["filesystems"][0] == entry
    assert result["data_root_source"] == "option" and result["containerd_root"] is None

    if fstype == "xfs":
        # imaxpct=5 of 81920 blocks of 4 KiB with 512-byte inodes: 32768 inodes at most. With
        # free space to spare, that ceiling is the inode total xfs reports.
        assert entry["xfs"] == {
            "inodes_on_demand": True,
            "imaxpct": 5,
            "inode_ceiling": 32768,
            "geometry_source": "superblock",
        }
        assert inodes_df["total"] == 32768
    else:
        assert entry["xfs"] is None


def test_inode_thresholds_trip_at_exact_counts(make_loopfs, quiet_host):
    fs = make_loopfs("ext4", inodes=4096)
    data = os.path.join(fs.mount_point, "docker")
    os.mkdir(data)
    total = os.statvfs(fs.mount_point).f_files
    assert total == 4096
    # "warn below 10% free": the most free inodes that still warn is the largest n with
    # n * 100 < 10 * total; the same for fail at 5%.
    warn_at = (10 * total - 1) // 100  # 409
    fail_at = (5 * total - 1) // 100  # 204
    args = dict(quiet_host, data_root=data)

    def fill_to(free):
        have = os.statvfs(fs.mount_point).f_ffree
        write_files(data, have - free, start=total - have)
        assert os.statvfs(fs.mount_point).f_ffree == free

    seen = {}
    for free, expected in (
        (warn_at + 1, "ok"),
        (warn_at, "warn"),
        (fail_at + 1, "warn"),
        (fail_at, "fail"),
    ):
        fill_to(free)
        entry = module_ok(args)["filesystems"][0]
        seen[free] = (entry["status"], entry["inodes"]["free"])
        assert seen[free] == (expected, free), seen
    assert entry["reasons"] == [
        "inodes: 4.98%% free (%d of 4096), below the fail threshold of 5%%" % fail_at
    ]

    failed = run_module("capacity_info", dict(args, fail_on_threshold=True))
    assert failed["failed"] is True
    assert failed["msg"] == (
        "below the fail threshold: %s (ext4 on %s): inodes: 4.98%% free (204 of 4096), "
        "below the fail threshold of 5%%" % (data, fs.mount_point)
    )
    assert failed["status"] == "fail"

    # Lower thresholds turn the same filesystem back to ok; an audit can gather without failing.
    relaxed = module_ok(dict(args, inode_warn_percent=4, inode_fail_percent=2))
    assert relaxed["status"] == "ok"


def test_containerd_root_and_extra_paths_in_check_mode(make_loopfs, tmp_path):
    data_fs = make_loopfs("ext4")
    containerd_fs = make_loopfs("xfs")
    data = os.path.join(data_fs.mount_point, "docker")
    containerd = os.path.join(containerd_fs.mount_point, "containerd")
    os.mkdir(data)
    os.mkdir(containerd)
    config = tmp_path / "config.toml"
    config.write_text('version = 2\nroot = "%s"\n[plugins]\n  root = "/elsewhere"\n' % containerd)

    result = run_module(
        "capacity_info",
        {
            "data_root": data,
            "docker_host": NO_ENGINE,
            "containerd_config": str(config),
            "paths": [data_fs.mount_point],
        },
        check=True,
    )
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert (result["containerd_root"], result["containerd_root_source"]) == (
        containerd,
        str(config),
    )
    assert [(entry["role"], entry["path"], entry["fstype"]) for entry in result["filesystems"]] == [
        ("data_root", data, "ext4"),
        ("containerd_root", containerd, "xfs"),
        ("path", data_fs.mount_point, "ext4"),
    ]
    assert result["image_store"] is None  # no engine answered
    assert result["engine"]["problem"]


def test_target_fit(make_loopfs, quiet_host):
    source = make_loopfs("ext4")
    data = os.path.join(source.mount_point, "docker")
    os.mkdir(data)
    write_files(data, 2000, size=10000)
    big = make_loopfs("ext4", size_mb=2048)
    small = make_loopfs("btrfs")

    fits = module_ok(dict(quiet_host, data_root=data, target=os.path.join(big.mount_point, "new")))
    du_inodes = int(run(["du", "-x", "--inodes", "-s", data]).stdout.split()[0])
    du_bytes = int(run(["du", "-x", "-s", "-B1", data]).stdout.split()[0])
    target = fits["target"]
    assert target["used"] == {"bytes": du_bytes, "inodes": du_inodes}
    assert target["checked_path"] == big.mount_point
    assert target["same_filesystem"] is False
    # the floors (1 GiB, 10000 inodes) exceed 10% of this small tree
    assert target["need"] == {"bytes": du_bytes + (1 << 30), "inodes": du_inodes + 10000}
    assert (target["fits"], target["reasons"]) == (True, [])
    assert fits["breakdown"] is None

    short = module_ok(dict(quiet_host, data_root=data, target=small.mount_point))
    available = short["target"]["filesystem"]["bytes"]["available"]
    assert short["target"]["fits"] is False
    assert short["target"]["reasons"] == [
        "needs %d bytes (%d used + %d margin), the target has %d available"
        % (du_bytes + (1 << 30), du_bytes, 1 << 30, available)
    ]


def _du(path, *options):
    return int(run(["du", "-x", "-s", *options, path]).stdout.split()[0])


def test_breakdown_equals_du_on_a_private_dockerd(busybox_dockerd, busybox_image, make_loopfs):
    daemon = busybox_dockerd
    data_root = daemon.data_root
    image = busybox_image.name
    docker = daemon.docker
    # Layers of our own: containers that write files (hard links among them), committed.
    docker(
        "run", "--network", "none", "--name", "w1", image, "sh", "-c",
        "mkdir -p /data && for i in $(seq 1 400); do echo $i > /data/f$i; done;"
        " ln /data/f1 /data/h1; ln /data/f1 /data/h2; ln /data/f2 /data/h3",
    )  # fmt: skip
    docker("commit", "w1", "dockerhost-test/layered:1")
    docker(
        "run", "--network", "none", "--name", "w2", "dockerhost-test/layered:1", "sh", "-c",
        "mkdir -p /more && for i in $(seq 1 150); do echo $i > /more/m$i; done",
    )  # fmt: skip
    docker("commit", "w2", "dockerhost-test/layered:2")
    docker("tag", image, "dockerhost-test/other-name:1")
    # A named volume with files, one of them hard-linked from elsewhere in the data-root.
    docker("volume", "create", "v1")
    docker(
        "run", "--network", "none", "--rm", "-v", "v1:/v", image, "sh", "-c",
        "for i in $(seq 1 120); do echo $i > /v/v$i; done",
    )  # fmt: skip
    os.link(
        os.path.join(data_root, "volumes", "v1", "_data", "v1"),
        os.path.join(data_root, "tmp", "link-to-volume-file"),
    )
    # A running container: its merged directory (and shm) are mounts inside the data-root.
    docker("run", "-d", "--network", "none", "--name", "running", image, "sleep", "600")
    # A tmpfs with files inside the data-root: on another device, so not counted either.
    inner = os.path.join(data_root, "inner-tmpfs")
    os.mkdir(inner)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", inner], check=True)
    try:
        write_files(inner, 50, size=100)
        merged = docker("inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", "running").stdout
        assert os.path.ismount(merged.strip())

        result = module_ok(
            {
                "data_root": data_root,
                "docker_host": "unix://" + daemon.socket,
                "breakdown": True,
                "top_layers": 3,
            }
        )
        du_inodes = _du(data_root, "--inodes")
        du_bytes = _du(data_root, "-B1")
        # The same walk that follows mounts sees much more: the exclusion is real.
        crossing = int(run(["du", "--inodes", "-s", data_root]).stdout.split()[0])
    finally:
        subprocess.run(["umount", inner], check=True)

    breakdown = result["breakdown"]
    assert (breakdown["inodes"], breakdown["bytes"]) == (du_inodes, du_bytes)
    assert crossing > du_inodes + 50
    assert breakdown["skipped"] == 0
    assert breakdown["path"] == data_root
    directories = breakdown["directories"]
    assert {"overlay2", "image", "containers", "volumes"} <= set(directories)
    assert "inner-tmpfs" not in directories  # the mount point itself belongs to the tmpfs
    assert 1 + sum(item["inodes"] for item in directories.values()) == du_inodes
    # The volume file linked from tmp/ counts once, in tmp (the first of the two by name).
    volumes = os.path.join(data_root, "volumes")
    assert directories["volumes"]["inodes"] == _du(volumes, "--inodes") - 1
    assert directories["tmp"]["inodes"] == _du(os.path.join(data_root, "tmp"), "--inodes")

    # The layer of w1 (400 files, 3 hard links counted once) has the most inodes.
    layers = breakdown["top_layers"]
    assert len(layers) == 3
    assert [layer["inodes"] for layer in layers] == sorted(
        (layer["inodes"] for layer in layers), reverse=True
    )
    top = layers[0]
    layer_dir = os.path.join(data_root, top["parent"], top["id"])
    assert top["parent"] == "overlay2"
    assert (top["inodes"], top["bytes"]) == (_du(layer_dir, "--inodes"), _du(layer_dir, "-B1"))
    assert os.path.isfile(os.path.join(layer_dir, "diff", "data", "h3"))

    assert result["data_root_source"] == "option"
    assert result["engine"]["running_driver"] == "overlay2"
    assert result["image_store"] == "graphdriver"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"data_root": "relative/docker"}, "data_root must be absolute, got 'relative/docker'"),
        (
            {"data_root": "/nonexistent/docker"},
            "data_root /nonexistent/docker does not exist; give an existing directory",
        ),
        (
            {"data_root": "/tmp", "paths": ["/proc/self"]},
            "paths /proc/self is on /proc, a proc pseudo filesystem that holds no data",
        ),
        (
            {"data_root": "/tmp", "target": "/sys/fs/new-root"},
            "target /sys/fs/new-root is on /sys",
        ),
        (
            {"data_root": "/tmp", "inode_warn_percent": 150},
            "inode_warn_percent must be from 0 to 100 (a percentage free), got 150",
        ),
        (
            {"data_root": "/tmp", "bytes_fail_percent": 20},
            "bytes_fail_percent (20) is above bytes_warn_percent (10)",
        ),
    ],
    ids=["relative", "missing", "proc", "sys", "threshold-range", "fail-above-warn"],
)
def test_bad_input_is_a_clear_error(quiet_host, args, message):
    result = run_module("capacity_info", dict(quiet_host, **args))
    assert result.get("failed") is True
    assert message in result["msg"]
    # fail_json, not a crash: ansible 2.19 adds "(traceback unavailable)" to every failure
    assert "Traceback" not in result.get("module_stderr", "") + result.get("exception", "")
    assert "MODULE FAILURE" not in result["msg"]
