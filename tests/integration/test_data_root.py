"""data_root moves the data-root of a real dockerd, managed through an init script as on a host
without systemd, from ext4 to xfs and btrfs, and nothing the engine holds is lost: images,
containers (running and stopped, with their files, whiteouts and opaque directories), volumes
and a large sparse file. Faults: the module killed at ten moments, targets that are too small
or lack d_type, and a daemon that will not start on the new root."""

import glob
import json
import os
import re
import subprocess
import sys
import time

import pytest
from ansible_module import run_module, start_module
from harness import fault_environment
from harness.service import ServiceDockerd

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._relocation import (  # noqa: E402
    journal_path,
)

pytestmark = pytest.mark.integration

BUSYBOX_IMAGE = "dockerhost-test/busybox:latest"
RUN = ("run", "--network", "none")
COPIED_AGAIN = re.compile(r"copied again (\d+) entries that were on the target")


def _module_args(daemon, path, **extra):
    args = {
        "path": path,
        "config_path": daemon.config_file,
        "docker_host": daemon.docker_host,
        "service_manager": "sysvinit",
        "init_script": daemon.init_script,
        "timeout": 60,
    }
    args.update(extra)
    return args


def engine_view(daemon, full=True):
    """What an operator sees of the engine: the listings and, when ``full``, each container's
    diff and the content of files inside the containers and the volume."""
    images = daemon.docker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    containers = daemon.docker(
        "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.State}}"
    )
    volumes = daemon.docker("volume", "ls", "-q")
    view = {
        "images": sorted(images.stdout.splitlines()),
        "containers": sorted(containers.stdout.splitlines()),
        "volumes": sorted(volumes.stdout.splitlines()),
    }
    if not full:
        return view
    for line in view["containers"]:
        name = line.split()[1]
        view["diff " + name] = sorted(daemon.docker("diff", name).stdout.splitlines())
    view["runner files"] = daemon.docker(
        "exec", "runner", "sh", "-c", "cat /tmp/new /etc/only; ls /etc /bin | wc -l; wc -c /sparse"
    ).stdout
    view["volume files"] = daemon.docker(
        *RUN, "--rm", "-v", "data:/data", BUSYBOX_IMAGE, "cat", "/data/kept"
    ).stdout
    return view


@pytest.fixture
def populated(make_loopfs, busybox_image, import_test_image):
    """A dockerd on ext4 with two images, a running and a stopped container that created,
    changed and deleted files, a named volume and a 1 GiB sparse file."""
    # Sizes cost nothing (sparse images); the preflight wants room for a 1 GiB margin.
    source_fs = make_loopfs("ext4", size_mb=3072)
    daemon = ServiceDockerd(os.path.join(source_fs.mount_point, "docker"))
    roots = []
    try:
        daemon.start()
        import_test_image(daemon, busybox_image)
        daemon.docker("volume", "create", "data")
        stopped_script = "echo kept > /data/kept; echo stopped > /stopped-file; rm /bin/vi"
        daemon.docker(
            *RUN, "-v", "data:/data", "--name", "stopped", BUSYBOX_IMAGE, "sh", "-c", stopped_script
        )
        runner_script = (
            "echo new > /tmp/new; rm /bin/ls; rm -rf /etc; mkdir /etc; echo only > /etc/only; "
            "truncate -s 1G /sparse; echo end >> /sparse; exec sleep 3600"
        )
        # --stop-timeout: sh as PID 1 ignores SIGTERM, and each stop would wait 10 s.
        daemon.docker(
            *RUN,
            "-d",
            "--stop-timeout",
            "1",
            "--name",
            "runner",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            runner_script,
        )
        daemon.docker("exec", "runner", "sh", "-c", "while [ ! -s /etc/only ]; do sleep 0.05; done")
        daemon.docker("commit", "stopped", "dockerhost-test/committed:1")
        yield daemon, source_fs, roots
    finally:
        daemon.destroy(extra_roots=tuple(roots))


@pytest.mark.parametrize("target_fs", ["xfs", "btrfs"])
def test_move_keeps_everything_the_engine_had(populated, make_loopfs, target_fs):
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    target_mount = make_loopfs(target_fs, size_mb=2048).mount_point
    target = os.path.join(target_mount, "docker")
    roots.append(target)
    before = engine_view(daemon)

    planned = run_module("data_root", _module_args(daemon, target), check=True)
    assert not planned.get("failed"), planned.get("msg")
    assert planned["changed"] and planned["plan"]["engine_running"]
    assert planned["plan"]["target_filesystem"] == target_fs
    assert not os.path.exists(target) and daemon.info()["DockerRootDir"] == source

    moved = run_module("data_root", _module_args(daemon, target))
    assert not moved.get("failed"), moved.get("msg")
    assert moved["changed"] and moved["driver"] == "overlay2"
    info = daemon.info()
    assert info["DockerRootDir"] == target and info["Driver"] == "overlay2"
    assert daemon.settings()["data-root"] == target
    assert daemon.settings()["shutdown-timeout"] == 1, "other daemon.json keys must survive"
    assert engine_view(daemon) == before
    assert moved["source_kept_at"].startswith(source + ".relocated-")
    assert os.path.isdir(moved["source_kept_at"]) and not os.path.exists(source)
    sparse = glob.glob(os.path.join(target, "overlay2", "*", "diff", "sparse"))
    assert len(sparse) == 1 and os.stat(sparse[0]).st_blocks * 512 < 1 << 20
    assert moved["timings"]["downtime"] < 30
    print("timings", moved["timings"])

    again = run_module("data_root", _module_args(daemon, target))
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False


def test_move_with_the_engine_stopped(populated, make_loopfs):
    daemon, source_fs, roots = populated
    before = engine_view(daemon)
    daemon.service("stop")
    target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
    roots.append(target)
    moved = run_module("data_root", _module_args(daemon, target))
    assert not moved.get("failed"), moved.get("msg")
    assert not daemon.answers(), "an engine that was stopped stays stopped"
    assert daemon.settings()["data-root"] == target
    daemon.start()
    daemon.docker("start", "runner")
    assert engine_view(daemon) == before


def test_preflight_refusals_change_nothing(populated, make_loopfs):
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    settings_before = daemon.settings()
    cases = {
        "too small in bytes": (make_loopfs("ext4", size_mb=48), "bytes"),
        "too few inodes": (make_loopfs("ext4", size_mb=2048, inodes=256), "inodes"),
        "no d_type": (make_loopfs("ext4", size_mb=2048, features=["^filetype"]), "d_type"),
    }
    for case, (fs, expected) in cases.items():
        result = run_module("data_root", _module_args(daemon, os.path.join(fs.mount_point, "d")))
        assert result.get("failed"), case
        assert expected in result["msg"], (case, result["msg"])
        assert not os.path.exists(os.path.join(fs.mount_point, "d")), case
    same = run_module("data_root", _module_args(daemon, os.path.join(source_fs.mount_point, "x")))
    assert same.get("failed") and "same filesystem" in same["msg"]
    inside = run_module("data_root", _module_args(daemon, os.path.join(source, "sub")))
    assert inside.get("failed") and "inside the current data-root" in inside["msg"]
    relative = run_module("data_root", _module_args(daemon, "srv/docker"))
    assert relative.get("failed") and "must be absolute" in relative["msg"]
    assert daemon.info()["DockerRootDir"] == source
    assert daemon.settings() == settings_before


def test_daemon_failing_on_the_new_root_is_rolled_back(populated, make_loopfs):
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    before = engine_view(daemon)
    settings_before = daemon.settings()
    target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
    roots.append(target)
    daemon.refuse_to_start_on(target)
    result = run_module("data_root", _module_args(daemon, target, timeout=15))
    assert result.get("failed")
    assert "rolled back" in result["msg"] and "daemon.json restored" in result["msg"]
    assert "runs on %s again" % source in result["msg"]
    assert daemon.info()["DockerRootDir"] == source
    assert daemon.settings() == settings_before
    assert engine_view(daemon) == before
    assert os.path.isdir(source), "the source stays where it was"


def test_a_second_run_while_the_first_works_waits_and_finds_the_move_done(populated, make_loopfs):
    """The rerun an operator starts after the controller's connection dropped, while the first
    run goes on by itself on the host: it waits for the first to finish, then has nothing to do;
    the running container keeps every file."""
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    # Thousands of small files in the volume make the first run last a few seconds.
    many = os.path.join(source, "volumes", "data", "_data", "many")
    os.makedirs(many)
    for number in range(20000):
        with open(os.path.join(many, "f%05d" % number), "w") as handle:
            handle.write("%d\n" % number)
    before = engine_view(daemon)
    target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
    roots.append(target)
    journal = journal_path(target)

    first = start_module("data_root", _module_args(daemon, target))
    deadline = time.monotonic() + 120
    while not os.path.exists(journal):
        assert first.running(), first.result()
        assert time.monotonic() < deadline, "the first run never started its copy"
        time.sleep(0.01)
    second = run_module("data_root", _module_args(daemon, target, lock_timeout=300), timeout=400)
    moved = first.result()

    assert not moved.get("failed"), moved.get("msg")
    assert moved["changed"] and moved["lock_waited"] < 1
    assert not second.get("failed"), second.get("msg")
    assert second["changed"] is False
    assert second["lock_waited"] > 0, "the second run waited for the first"
    assert daemon.info()["DockerRootDir"] == target
    assert engine_view(daemon) == before
    assert len(os.listdir(os.path.join(target, "volumes", "data", "_data", "many"))) == 20000


def test_force_over_a_target_another_engine_runs_on_is_refused(
    populated, make_loopfs, start_dockerd, busybox_image, import_test_image
):
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
    other = start_dockerd(target, storage_driver="overlay2")
    other.assert_started()
    import_test_image(other, busybox_image)
    other.docker(*RUN, "-d", "--name", "other", BUSYBOX_IMAGE, "sleep", "3600")
    settings_before = daemon.settings()

    for args in (_module_args(daemon, target, force=True), _module_args(daemon, target)):
        refused = run_module("data_root", args)
        assert refused.get("failed")
        assert "path %s is in use" % target in refused["msg"]
        assert "(overlay) is mounted inside it" in refused["msg"]
        assert "(dockerd) uses it: open file %s/" % target in refused["msg"]

    assert daemon.info()["DockerRootDir"] == source
    assert daemon.settings() == settings_before
    listing = other.docker("exec", "other", "ls", "/").stdout.split()
    assert {"bin", "etc", "tmp"} <= set(listing)
    assert other.docker("diff", "other").stdout == ""


def test_force_over_a_copy_made_by_rsync_converges_on_the_first_run(populated, make_loopfs):
    """An operator pre-filled the target with `rsync -a` (no -X, no -S: xattrs lost, the sparse
    file filled in) and one file there has the source's size, mtime, owner and mode but other
    bytes. force must copy again what only looked copied, and succeed."""
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    before = engine_view(daemon)
    target = os.path.join(make_loopfs("xfs", size_mb=3072).mount_point, "docker")
    roots.append(target)
    subprocess.run(["rsync", "-a", source + "/", target + "/"], check=True)
    # rsync -a descended into the running containers' merged mounts; only the copy has that.
    kept = os.path.join("volumes", "data", "_data", "kept")
    stamp = os.stat(os.path.join(source, kept))
    with open(os.path.join(target, kept), "wb") as handle:
        handle.write(b"X" * stamp.st_size)
    os.utime(os.path.join(target, kept), ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    # A source file changed within the racy window of the bulk pass's start is copied again by
    # the final pass anyway (the racy-clean rule), and then nothing is left for the repair pass
    # this test is about: on a loaded machine the fixture's files can be that young.
    time.sleep(max(0.0, stamp.st_ctime + 2.5 - time.time()))

    moved = run_module("data_root", _module_args(daemon, target, force=True))
    assert not moved.get("failed"), moved.get("msg")
    assert moved["changed"] and daemon.info()["DockerRootDir"] == target
    # The file that only looked copied is copied again, and maybe more: rsync ran while the
    # engine wrote, and what it copied then may pass for copied too (asserting exactly 1 failed
    # once in CI under load). The bytes of the kept file are checked below.
    again = [
        int(match.group(1))
        for match in map(COPIED_AGAIN.match, moved["steps"])
        if match is not None
    ]
    assert again and again[0] >= 1, "\n".join(moved["steps"])
    assert engine_view(daemon) == before
    with open(os.path.join(target, kept), "rb") as handle:
        assert handle.read() == b"kept\n"
    sparse = glob.glob(os.path.join(target, "overlay2", "*", "diff", "sparse"))
    assert len(sparse) == 1 and os.stat(sparse[0]).st_blocks * 512 < 1 << 20


def test_a_file_hard_linked_outside_the_data_root_is_moved_as_a_file_of_its_own(
    populated, make_loopfs, tmp_path
):
    """A volume file shares its inode with a file outside the data-root (an operator's
    hard-linked backup): the copy cannot keep that link, and the check must not ask for it."""
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    inside = os.path.join(source, "volumes", "data", "_data", "linked")
    with open(inside, "w") as handle:
        handle.write("shared with a backup\n")
    # dockerd bind-mounts the data-root onto itself, and link(2) does not cross mounts: make
    # the link through a plain bind of the filesystem.
    view = str(tmp_path / "view")
    os.mkdir(view)
    subprocess.run(["mount", "--bind", source_fs.mount_point, view], check=True)
    try:
        os.link(
            os.path.join(view, os.path.relpath(inside, source_fs.mount_point)),
            os.path.join(view, "backup-of-linked"),
        )
    finally:
        subprocess.run(["umount", view], check=True)
    assert os.stat(inside).st_nlink == 2
    before = engine_view(daemon)
    target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
    roots.append(target)

    for verify in ("changed", "full"):
        planned = run_module("data_root", _module_args(daemon, target, verify=verify), check=True)
        assert not planned.get("failed"), planned.get("msg")
    moved = run_module("data_root", _module_args(daemon, target))
    assert not moved.get("failed"), moved.get("msg")
    assert any(
        "1 files in %s are hard-linked to files outside it (such as volumes/data/_data/linked)"
        % source
        in step
        for step in moved["steps"]
    ), moved["steps"]
    assert engine_view(daemon) == before
    copied = os.path.join(target, "volumes", "data", "_data", "linked")
    assert os.stat(copied).st_nlink == 1
    with open(copied) as handle:
        assert handle.read() == "shared with a backup\n"


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def test_a_journal_planted_by_another_user_is_never_obeyed(populated, make_loopfs):
    """A shared, sticky /srv-like directory (anyone may create files there) holds the target.
    After the move, an unprivileged user plants a journal beside the target, as the journal
    used to live there, naming a root-owned directory as the source and a daemon.json that
    opens the engine to the network. The rerun must neither remove that directory nor write
    that configuration; the user cannot write where the journals are kept now."""
    daemon, source_fs, roots = populated
    shared = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)
    os.mkdir(os.path.join(shared, "srv"), 0o755)  # root's, so the sticky bit protects it
    target = os.path.join(shared, "srv", "disk", "docker")  # disk/ is missing: the move makes it
    roots.append(target)
    args = _module_args(daemon, target, remove_source=True)
    moved = run_module("data_root", args)
    assert not moved.get("failed"), moved.get("msg")
    disk = os.stat(os.path.join(shared, "srv", "disk"))
    assert (disk.st_mode & 0o7777, disk.st_uid, disk.st_gid) == (0o755, 0, 0)

    victim = os.path.join(source_fs.mount_point, "victim")
    os.makedirs(victim)
    with open(os.path.join(victim, "precious"), "w") as handle:
        handle.write("root's data\n")
    planted = json.dumps(
        {
            "phase": "switched",
            "method": "config",
            "source": victim,
            "target": target,
            "driver": "overlay2",
            "engine_was_running": True,
            "inventory": None,
            "previous_config": json.dumps({"hosts": ["tcp://0.0.0.0:2375"], "data-root": victim}),
        }
    )
    write = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
    # Where the journal used to be: beside the target (root's disk/, so root puts it there for
    # the user, who could have written it in a shared parent) and in the shared directory.
    beside = os.path.join(shared, "srv", "disk", ".docker.relocation.json")
    with open(beside, "w") as handle:
        handle.write(planted)
    os.chown(beside, 65534, 65534)
    # The user reaches the shared directory as a user of a real /srv would: from inside it
    # (the test's own parents are root's 0700).
    subprocess.run(
        [*NOBODY, sys.executable, "-c", write, ".disk.relocation.json", planted],
        cwd=shared,
        check=True,
    )
    assert os.stat(os.path.join(shared, ".disk.relocation.json")).st_uid == 65534
    journals = os.path.dirname(journal_path(target))
    denied = subprocess.run(
        [*NOBODY, sys.executable, "-c", write, journal_path(target), planted],
        capture_output=True,
        text=True,
        check=False,
    )
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert os.stat(journals).st_mode & 0o777 == 0o700

    again = run_module("data_root", args)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    with open(os.path.join(victim, "precious")) as handle:
        assert handle.read() == "root's data\n"
    assert "hosts" not in daemon.settings()
    assert daemon.info()["DockerRootDir"] == target


def test_a_target_another_user_could_swap_is_refused(populated, make_loopfs):
    daemon, source_fs, roots = populated
    mount = make_loopfs("xfs", size_mb=2048).mount_point
    theirs = os.path.join(mount, "theirs")
    os.mkdir(theirs)
    os.chown(theirs, 65534, 65534)
    target = os.path.join(theirs, "docker")
    for verb in ("create", "replace"):
        refused = run_module("data_root", _module_args(daemon, target))
        assert refused.get("failed")
        assert (
            "path %s is not safe: %s belongs to uid 65534, so someone other than root could %s "
            "%s (as a symlink to /etc, say)" % (target, theirs, verb, target) in refused["msg"]
        ), refused["msg"]
        if verb == "create":
            assert not os.path.exists(target)
            os.mkdir(target)
    assert os.listdir(target) == []
    assert daemon.info()["DockerRootDir"] == os.path.join(source_fs.mount_point, "docker")


def test_mount_method_never_removes_what_lies_beneath_an_old_data_root_of_its_own(
    make_loopfs, busybox_image, import_test_image, tmp_path
):
    """The old data-root is a filesystem of its own, mounted on a directory of the root
    filesystem that holds files of its own underneath. method: mount with remove_source must
    not delete those (they were never copied), and keeps the old filesystem."""
    parent_fs = make_loopfs("ext4", size_mb=256)
    old_fs = make_loopfs("ext4", size_mb=3072)
    source = os.path.join(parent_fs.mount_point, "docker")
    os.makedirs(source)
    with open(os.path.join(source, "underneath"), "w") as handle:
        handle.write("hidden by the mount, never part of the data-root\n")
    subprocess.run(["mount", "--bind", old_fs.mount_point, source], check=True)
    target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
    daemon = ServiceDockerd(source)
    fstab = tmp_path / "fstab"
    fstab.write_text("")
    try:
        daemon.start()
        import_test_image(daemon, busybox_image)
        before = engine_view(daemon, full=False)
        args = _module_args(
            daemon, target, method="mount", fstab_path=str(fstab), remove_source=True
        )
        moved = run_module("data_root", args)
        assert not moved.get("failed"), moved.get("msg")
        assert any("it is a filesystem of its own" in step for step in moved["steps"]), moved
        assert engine_view(daemon, full=False) == before
        daemon.service("stop")
    finally:
        daemon.destroy(extra_roots=(target,))
        for _attempt in range(3):
            if subprocess.run(["umount", source], check=False).returncode != 0:
                break
    with open(os.path.join(source, "underneath")) as handle:
        assert handle.read() == "hidden by the mount, never part of the data-root\n"
    assert os.path.isdir(os.path.join(old_fs.mount_point, "overlay2")), "the old data is kept"


def test_a_target_bound_to_a_directory_inside_the_data_root_is_refused(populated, tmp_path):
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    inside = os.path.join(source, "volumes", "data", "_data", "alias")
    os.makedirs(inside)
    target = str(tmp_path / "alias")
    os.mkdir(target)
    subprocess.run(["mount", "--bind", inside, target], check=True)
    try:
        refused = run_module(
            "data_root", _module_args(daemon, target, allow_same_filesystem=True, force=True)
        )
    finally:
        subprocess.run(["umount", target], check=True)
    assert refused.get("failed")
    assert "path %s is, through a bind mount, the directory" % target in refused["msg"]
    assert "the copy would write into what it reads" in refused["msg"]
    assert os.listdir(inside) == []
    assert daemon.info()["DockerRootDir"] == source


RACING_WRITER = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "harness", "racing_writer.py"
)


def test_a_file_rewritten_in_the_tick_it_was_copied_gets_its_last_bytes(
    make_loopfs, busybox_image, import_test_image
):
    """ext4 with 128-byte inodes keeps whole-second timestamps (as coarse kernel clocks do for
    a tick): a same-size write in the second the copier read a file leaves its ctime as it
    was. A process rewrites each of 300 files in a volume right after the copier reads it,
    while the engine runs; after the move every file holds its last bytes."""
    source_fs = make_loopfs("ext4", size_mb=3072, mkfs_args=("-I", "128"))
    source = os.path.join(source_fs.mount_point, "docker")
    daemon = ServiceDockerd(source)
    roots = []
    writer = None
    try:
        daemon.start()
        import_test_image(daemon, busybox_image)
        daemon.docker("volume", "create", "db")
        daemon.docker(
            *RUN, "-d", "--stop-timeout", "1", "-v", "db:/db", "--name", "database",
            BUSYBOX_IMAGE, "sleep", "3600",
        )  # fmt: skip
        pages = os.path.join(source, "volumes", "db", "_data", "pages")
        os.makedirs(pages)
        for number in range(300):
            with open(os.path.join(pages, "page-%03d" % number), "wb") as handle:
                handle.write(b"x" * 64)
        stamp = os.stat(pages)
        assert stamp.st_ctime_ns % 10**9 == 0, "ext4 -I 128 keeps whole seconds"
        writer = subprocess.Popen(
            [sys.executable, RACING_WRITER, pages], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline() == "ready\n"
        target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
        roots.append(target)

        moved = run_module("data_root", _module_args(daemon, target))
        writer.terminate()
        rewritten = [line.split()[1] for line in writer.communicate(timeout=30)[0].splitlines()]

        assert not moved.get("failed"), moved.get("msg")
        assert len(rewritten) == 300, "the copier read every page while the writer watched"
        kept = os.path.join(moved["source_kept_at"], "volumes", "db", "_data", "pages")
        copied = os.path.join(target, "volumes", "db", "_data", "pages")
        stale = []
        for name in sorted(rewritten):
            with open(os.path.join(kept, name), "rb") as last, open(
                os.path.join(copied, name), "rb"
            ) as copy:
                last_bytes = last.read()
                assert b" fin " in last_bytes
                if copy.read() != last_bytes:
                    stale.append(name)
        assert stale == [], "%d pages hold old bytes after the move" % len(stale)
        seen = daemon.docker(
            *RUN, "--rm", "-v", "db:/db", BUSYBOX_IMAGE, "cat", "/db/pages/page-123"
        )
        assert seen.stdout.encode() == open(os.path.join(kept, "page-123"), "rb").read()
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        daemon.destroy(extra_roots=tuple(roots))


FAULT_POINTS = (
    "before-bulk-copy",
    "during-bulk-copy",
    "after-bulk-copy",
    "after-stop",
    "during-final-pass",
    "after-verify",
    "during-switch",
    "after-config",
    "after-start",
    "after-source-kept",
)


def test_killed_at_any_moment_the_rerun_completes(populated, make_loopfs):
    """One engine is moved ten times, between ext4 and xfs, each move killed (SIGKILL) at
    another step; after each kill the engine can start and has everything, and a rerun of the
    same task completes the move."""
    daemon, source_fs, roots = populated
    before = engine_view(daemon)
    listed = engine_view(daemon, full=False)
    xfs = make_loopfs("xfs", size_mb=3072)
    filesystems = (xfs.mount_point, source_fs.mount_point)
    for number, fault in enumerate(FAULT_POINTS):
        source = daemon.info()["DockerRootDir"]
        target = os.path.join(filesystems[number % 2], "docker-%d" % number)
        roots.append(target)
        killed = run_module(
            "data_root",
            _module_args(daemon, target),
            environment=fault_environment(fault),
        )
        assert killed.get("failed"), fault
        assert os.path.isdir(source) or fault == "after-source-kept", fault
        switched = daemon.settings()["data-root"] == target
        if number % 2 == 0 or daemon.answers():
            # The engine can start (on the source before the switch, on the verified copy
            # after it) and has everything. Every other time it is left as the kill left it,
            # for the rerun to bring up.
            if not daemon.answers():
                daemon.start()
            expected_root = target if switched else source
            assert daemon.info()["DockerRootDir"] == expected_root, fault
            assert engine_view(daemon, full=False)["images"] == listed["images"], fault
        done = run_module("data_root", _module_args(daemon, target))
        assert not done.get("failed"), (fault, done.get("msg"))
        assert done["changed"], fault
        assert done["lock_waited"] < 1, "the killed run's lock blocks nobody"
        assert daemon.info()["DockerRootDir"] == target, fault
        journal = journal_path(target)
        assert not os.path.exists(journal), fault
        assert engine_view(daemon, full=False) == listed, fault
    assert engine_view(daemon) == before


def test_mount_method_binds_the_new_filesystem_over_the_old_path(populated, make_loopfs, tmp_path):
    daemon, source_fs, roots = populated
    source = os.path.join(source_fs.mount_point, "docker")
    before = engine_view(daemon)
    settings_before = daemon.settings()
    target = os.path.join(make_loopfs("xfs", size_mb=2048).mount_point, "docker")
    roots.append(target)
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=0a1b / ext4 errors=remount-ro 0 1\n")
    args = _module_args(daemon, target, method="mount", fstab_path=str(fstab), remove_source=True)
    moved = run_module("data_root", args)
    try:
        assert not moved.get("failed"), moved.get("msg")
        assert moved["changed"] and moved["source_kept_at"] is None
        assert daemon.info()["DockerRootDir"] == source
        assert os.stat(source).st_dev == os.stat(target).st_dev, "the old path shows the new fs"
        assert daemon.settings() == settings_before, "daemon.json is not touched"
        assert fstab.read_text().splitlines()[0] == "UUID=0a1b / ext4 errors=remount-ro 0 1"
        assert fstab.read_text().endswith("%s %s none bind 0 0\n" % (target, source))
        assert engine_view(daemon) == before
        again = run_module("data_root", args)
        assert not again.get("failed") and again["changed"] is False
    finally:
        daemon.service("stop")
        subprocess.run(["umount", source], check=False)
    # remove_source removed the old data beneath the mount point.
    assert os.listdir(source) == []
