"""The data-root copier and the manifest check on real filesystems: an overlay2-shaped tree with
whiteouts, opaque and redirected directories, security and user xattrs, ACLs, hard links,
sparse files, foreign owners and a mount inside is copied from ext4 to xfs and btrfs, checked
by the manifest and by the kernel itself (an overlay mount of the copied layers shows what the
source layers show), then changed and copied again."""

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402

sys.path.insert(0, collections_root())
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import (  # noqa: E402
    RACY_WINDOW_NS,
    CopyError,
    TreeCopy,
    remove_path,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_manifest import (  # noqa: E402
    compare_entries,
    compare_trees,
    compare_trees_in_detail,
)

SPARSE_SIZE = 64 << 20


def _write(path, data=b"", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def build_store(root):
    """Two layers and a container layer shaped as dockerd writes them under overlay2/."""
    store = os.path.join(root, "overlay2")
    lower = os.path.join(store, "aaa", "diff")
    upper = os.path.join(store, "bbb", "diff")
    _write(os.path.join(lower, "etc", "hostname"), b"lower\n")
    _write(os.path.join(lower, "etc", "gone"), b"deleted above\n")
    _write(os.path.join(lower, "opt", "app", "old"), b"hidden by the opaque dir\n")
    _write(os.path.join(lower, "srv", "moved", "inside"), b"renamed dir content\n")
    _write(os.path.join(lower, "bin", "tool"), b"\x7fELF" + b"\0" * 4096, 0o4755)
    os.link(os.path.join(lower, "bin", "tool"), os.path.join(lower, "bin", "tool-link"))
    os.chown(os.path.join(lower, "etc", "hostname"), 100999, 100999)
    os.setxattr(
        os.path.join(lower, "bin", "tool"),
        "security.capability",
        bytes.fromhex("0100000200200000000000000000000000000000"),
    )
    os.setxattr(os.path.join(lower, "etc", "hostname"), "user.note", b"kept")
    subprocess.run(["setfacl", "-m", "u:1234:rx", os.path.join(lower, "srv")], check=True)
    with open(os.path.join(lower, "sparse.img"), "wb") as handle:
        handle.truncate(SPARSE_SIZE)
        handle.seek(SPARSE_SIZE // 2)
        handle.write(b"middle")
    # The container layer: a whiteout, an opaque directory, a redirect, a new file.
    os.makedirs(os.path.join(upper, "etc"))
    os.mknod(os.path.join(upper, "etc", "gone"), 0o600 | 0o020000, os.makedev(0, 0))
    _write(os.path.join(upper, "opt", "app", "new"), b"opaque dir content\n")
    os.setxattr(os.path.join(upper, "opt", "app"), "trusted.overlay.opaque", b"y")
    os.makedirs(os.path.join(upper, "srv", "renamed"))
    os.setxattr(os.path.join(upper, "srv", "renamed"), "trusted.overlay.redirect", b"/srv/moved")
    os.mknod(os.path.join(upper, "srv", "moved"), 0o600 | 0o020000, os.makedev(0, 0))
    os.makedirs(os.path.join(store, "l"))
    os.symlink("../aaa/diff", os.path.join(store, "l", "AAAAAAAAAAAAAAAAAAAAAAAAAA"))
    _write(os.path.join(store, "bbb", "lower"), b"l/AAAAAAAAAAAAAAAAAAAAAAAAAA")
    os.makedirs(os.path.join(store, "bbb", "work"))
    os.makedirs(os.path.join(store, "bbb", "merged"))
    os.mkfifo(os.path.join(root, "fifo"))
    return store


def merged_view(store, base):
    """What the kernel shows when overlay mounts the store's layers, as {path: bytes or kind}."""
    merged = os.path.join(base, "view")
    work = os.path.join(base, "view-work")
    os.makedirs(merged)
    os.makedirs(work)
    upper = os.path.join(store, "bbb", "diff")
    lower = os.path.join(store, "aaa", "diff")
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            "lowerdir=%s:%s,redirect_dir=on" % (upper, lower),
            merged,
        ],
        check=True,
    )
    try:
        view = {}
        for directory, dirs, files in os.walk(merged):
            for name in files:
                path = os.path.join(directory, name)
                with open(path, "rb") as handle:
                    view[os.path.relpath(path, merged)] = handle.read()[:64]
            for name in dirs:
                view[os.path.relpath(os.path.join(directory, name), merged)] = "dir"
        return view
    finally:
        subprocess.run(["umount", merged], check=True)


@pytest.mark.parametrize("target_fs", ["xfs", "btrfs"])
def test_copy_keeps_what_overlay2_needs(make_loopfs, target_fs, tmp_path):
    source_fs = make_loopfs("ext4", size_mb=256)
    target = make_loopfs(target_fs)
    source = os.path.join(source_fs.mount_point, "docker")
    store = build_store(source)
    shm = os.path.join(source, "containers", "c1", "mounts", "shm")
    os.makedirs(shm)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "shm", shm], check=True)
    try:
        _write(os.path.join(shm, "in-the-mount"), b"not data-root content")
        # A data-root is older than the racy-clean window: entries changed in the seconds
        # before a pass are copied again by the next one, whatever their snapshot says.
        time.sleep(RACY_WINDOW_NS / 1e9)
        copy = TreeCopy(source, os.path.join(target.mount_point, "docker"))
        first = copy.run()
        assert copy.skipped_mounts == ["containers/c1/mounts/shm"]
        assert first["linked"] == 1

        count, examples = compare_trees(source, copy.target, hash_paths=True)
        assert (count, examples) == (0, [])
        copied_store = os.path.join(copy.target, "overlay2")
        assert merged_view(copied_store, str(tmp_path / "b")) == merged_view(
            store, str(tmp_path / "a")
        )
        assert not os.listdir(os.path.join(copy.target, "containers", "c1", "mounts", "shm"))
        sparse = os.stat(os.path.join(copied_store, "aaa", "diff", "sparse.img"))
        assert sparse.st_size == SPARSE_SIZE and sparse.st_blocks * 512 < 1 << 20
        acl = subprocess.run(
            ["getfacl", "-cn", os.path.join(copied_store, "aaa", "diff", "srv")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "user:1234:r-x" in acl

        # Changes while the engine still runs: content, an xattr alone (mtime unchanged),
        # a new hard link, a removal, a new whiteout.
        hostname = os.path.join(store, "aaa", "diff", "etc", "hostname")
        stamp = os.stat(hostname)
        os.setxattr(hostname, "user.note", b"changed")
        os.utime(hostname, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        _write(os.path.join(store, "bbb", "diff", "etc", "added"), b"new\n")
        os.link(
            os.path.join(store, "bbb", "diff", "etc", "added"),
            os.path.join(store, "bbb", "diff", "etc", "added-link"),
        )
        os.unlink(os.path.join(store, "aaa", "diff", "opt", "app", "old"))
        os.mknod(
            os.path.join(store, "bbb", "diff", "etc", "hostname"),
            0o600 | 0o020000,
            os.makedev(0, 0),
        )
        second = copy.run()
        # Exactly what changed is copied (the new link group makes it a whole-tree pass, which
        # may copy again what the pass it replaced had copied).
        assert sorted(copy.changed) == [
            "overlay2/aaa/diff/etc/hostname",
            "overlay2/bbb/diff/etc/added",
            "overlay2/bbb/diff/etc/added-link",
            "overlay2/bbb/diff/etc/hostname",
        ]
        assert second["visited"] == "whole tree"
        assert second["removed"] == 1 and second["linked"] == 1
        assert compare_trees(source, copy.target, hash_paths=True) == (0, [])
        # What the second pass found racily clean (changed in the seconds before it) is copied
        # once more by the next pass; once nothing changed recently, a pass copies nothing.
        assert second["racy"] > 0
        time.sleep(RACY_WINDOW_NS / 1e9)
        third = copy.run()
        assert third["copied"] + third["linked"] == second["racy"] and third["racy"] == 0
        assert copy.run()["copied"] == 0
    finally:
        subprocess.run(["umount", shm], check=True)


def test_manifest_names_what_a_careless_copy_loses(make_loopfs, tmp_path):
    source_fs = make_loopfs("ext4", size_mb=256)
    source = os.path.join(source_fs.mount_point, "docker")
    build_store(source)
    careless = str(tmp_path / "careless")
    # cp -a without --preserve=all... keeps xattrs as root; what it does not keep is sparseness
    # with --sparse=never, and a plain cp -r keeps no owners, modes or links.
    subprocess.run(["cp", "-r", source, careless], check=True)
    count, examples = compare_trees(source, careless)
    assert count > 0
    text = "\n".join(examples)
    assert "uid differs" in text or "mode differs" in text


def test_incremental_check_covers_what_changed_after_a_full_one(make_loopfs):
    source_fs = make_loopfs("ext4", size_mb=256)
    target_fs = make_loopfs("xfs")
    source = os.path.join(source_fs.mount_point, "docker")
    store = build_store(source)
    copy = TreeCopy(source, os.path.join(target_fs.mount_point, "docker"))
    copy.run()
    changed_file = os.path.join(store, "bbb", "diff", "opt", "app", "new")
    _write(changed_file, b"changed while the engine ran\n")
    early = compare_trees_in_detail(source, copy.target)
    assert early.paths == {"overlay2/bbb/diff/opt/app/new"}

    os.unlink(os.path.join(store, "aaa", "diff", "etc", "hostname"))
    copy.run()
    assert "overlay2/bbb/diff/opt/app/new" in copy.changed
    assert "overlay2/aaa/diff/etc" in copy.changed_directories
    paths = copy.changed | early.paths
    directories = copy.changed_directories | early.paths
    assert compare_entries(source, copy.target, paths, directories, paths) == (0, [])

    # Damage in the copy where the final pass wrote is found, content included.
    with open(os.path.join(copy.target, "overlay2/bbb/diff/opt/app/new"), "r+b") as handle:
        handle.write(b"C")
    os.utime(
        os.path.join(copy.target, "overlay2/bbb/diff/opt/app/new"),
        ns=(0, os.stat(changed_file).st_mtime_ns),
    )
    count, examples = compare_entries(source, copy.target, paths, directories, paths)
    assert count == 1 and "sha256 differs" in examples[0]
    # A stray entry in a directory the final pass changed is found by its name list.
    _write(os.path.join(copy.target, "overlay2/aaa/diff/etc/stray"))
    count, examples = compare_entries(source, copy.target, set(), directories)
    assert any(example.startswith("overlay2/aaa/diff/etc: names differs") for example in examples)


def test_removal_never_crosses_into_another_filesystem(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64)
    tree = os.path.join(fs.mount_point, "old-root")
    volume = os.path.join(tree, "volumes")
    os.makedirs(volume)
    _write(os.path.join(tree, "engine-id"), b"x")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "vol", volume], check=True)
    try:
        _write(os.path.join(volume, "data"), b"on another filesystem")
        with pytest.raises(CopyError, match="another filesystem is mounted there"):
            remove_path(tree)
        with open(os.path.join(volume, "data"), "rb") as handle:
            assert handle.read() == b"on another filesystem"
    finally:
        subprocess.run(["umount", volume], check=True)


def _container_layer(root):
    """overlay2/ccc of a stopped container as the source shows it: an upper layer and the
    empty merged directory the engine mounts on start."""
    layer = os.path.join(root, "overlay2", "ccc")
    _write(os.path.join(layer, "diff", "tmp", "written"), b"by the container\n")
    os.makedirs(os.path.join(layer, "merged"))
    os.makedirs(os.path.join(layer, "work"))
    return layer


def _mount_container_root(target_layer, scratch):
    """Mount a running container's root filesystem on ``target_layer/merged``, as an engine
    started on the target does; returns (lower, upper) of that mount."""
    lower = os.path.join(scratch, "lower")
    upper = os.path.join(scratch, "upper")
    work = os.path.join(scratch, "work")
    for name in ("bin/sh", "etc/hostname", ".dockerenv"):
        _write(os.path.join(lower, name), b"image file\n")
    os.makedirs(upper)
    os.makedirs(work)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work),
         os.path.join(target_layer, "merged")],
        check=True,
    )  # fmt: skip
    return lower, upper


def test_a_pass_never_removes_inside_a_container_mounted_on_the_target(make_loopfs, tmp_path):
    """An engine started on the target mounts a container's root on overlay2/<id>/merged; the
    source's merged directory is empty. The pass must stop, not whiteout the container's /bin."""
    source = os.path.join(make_loopfs("ext4", size_mb=64).mount_point, "docker")
    target_fs = make_loopfs("xfs")
    target = os.path.join(target_fs.mount_point, "docker")
    _container_layer(source)
    copy = TreeCopy(source, target)
    os.makedirs(target)
    copy.run()
    merged = os.path.join(target, "overlay2", "ccc", "merged")
    _lower, upper = _mount_container_root(os.path.dirname(merged), str(tmp_path))
    try:
        with pytest.raises(CopyError, match="overlay2/ccc/merged \\(overlay\\) is mounted inside"):
            copy.run()
        with pytest.raises(CopyError, match="mounted inside it"):
            TreeCopy(source, target, trust_existing=True).run()
        assert sorted(os.listdir(merged)) == [".dockerenv", "bin", "etc"]
        assert os.listdir(upper) == [], "no whiteout was written into the container's layer"
    finally:
        subprocess.run(["umount", merged], check=True)


def test_a_mount_appearing_during_a_pass_stops_it(make_loopfs, tmp_path):
    source = os.path.join(make_loopfs("ext4", size_mb=64).mount_point, "docker")
    target = os.path.join(make_loopfs("xfs").mount_point, "docker")
    _container_layer(source)
    os.makedirs(target)
    TreeCopy(source, target).run()
    # Files at the top are copied before any directory is entered: the mount comes after the
    # pass checked the mount table and before it reaches overlay2/.
    for number in range(150):
        _write(os.path.join(source, "file-%03d" % number), b"x")
    merged = os.path.join(target, "overlay2", "ccc", "merged")
    mounted = []
    copy = TreeCopy(source, target)

    def engine_starts_on_the_target():
        if not mounted:
            mounted.append(_mount_container_root(os.path.dirname(merged), str(tmp_path)))

    copy.on_progress = engine_starts_on_the_target
    try:
        with pytest.raises(CopyError, match="another filesystem is mounted there"):
            copy.run()
        assert mounted, "the mount was made during the pass"
        assert sorted(os.listdir(merged)) == [".dockerenv", "bin", "etc"]
        assert os.listdir(mounted[0][1]) == []
    finally:
        if mounted:
            subprocess.run(["umount", merged], check=True)


def test_the_check_compares_xattr_values_not_only_names(make_loopfs):
    source = os.path.join(make_loopfs("ext4", size_mb=64).mount_point, "docker")
    target = os.path.join(make_loopfs("xfs").mount_point, "docker")
    build_store(source)
    TreeCopy(source, target).run()
    assert compare_trees(source, target) == (0, [])
    relative = os.path.join("overlay2", "aaa", "diff", "etc", "hostname")
    os.setxattr(os.path.join(target, relative), "user.note", b"kepT")
    count, examples = compare_trees(source, target)
    assert count == 1 and examples[0].startswith(relative + ": xattrs differs")
    count, examples = compare_entries(source, target, {relative})
    assert count == 1 and examples[0].startswith(relative + ": xattrs differs")


def _tree_in_use(source, count=150):
    """Files at the top of ``source``, copied before any directory is entered: the progress
    callback, called after every hundred entries, runs while the rest waits."""
    for number in range(count):
        _write(os.path.join(source, "file-%03d" % number), b"%d\n" % number)


def test_entries_that_vanish_during_a_pass_are_no_error(make_loopfs):
    source = os.path.join(make_loopfs("ext4", size_mb=64).mount_point, "docker")
    target = os.path.join(make_loopfs("xfs").mount_point, "docker")
    _tree_in_use(source)
    _write(os.path.join(source, "layer", "file"), b"in a directory\n")
    copy = TreeCopy(source, target)

    def container_removes_files():
        if copy.on_progress is not None:
            copy.on_progress = None
            for name in os.listdir(source):
                if name.startswith("file-") and not os.path.exists(os.path.join(target, name)):
                    os.unlink(os.path.join(source, name))
            subprocess.run(["rm", "-r", os.path.join(source, "layer")], check=True)

    copy.on_progress = container_removes_files
    copy.run()
    copy.run()
    assert compare_trees(source, target, hash_paths=True) == (0, [])
    assert not os.path.exists(os.path.join(target, "layer"))


def test_a_directory_swapped_for_a_symlink_during_a_pass_copies_nothing_it_points_to(
    make_loopfs, tmp_path
):
    """A container swaps directories of its layer for symlinks to a host directory between
    the listing and the descent: nothing of the host directory may reach the copy."""
    source = os.path.join(make_loopfs("ext4", size_mb=64).mount_point, "docker")
    target = os.path.join(make_loopfs("xfs").mount_point, "docker")
    secrets = tmp_path / "etc"
    secrets.mkdir()
    (secrets / "shadow").write_text("root:$6$secret:19000:0:99999:7:::\n")
    diff = os.path.join(source, "overlay2", "ccc", "diff")
    layers = ["dir-%02d" % number for number in range(40)]
    for name in layers:
        _write(os.path.join(diff, name, "hostname"), b"container\n")
    # Files beside the directories: the walk lists diff/, copies files (the progress callback
    # runs after a hundred), and enters the directories afterwards. Listing order is the
    # filesystem's (hashed on ext4): some directories come before the callback, and are then
    # swapped after the listing named them directories.
    _tree_in_use(diff)
    copy = TreeCopy(source, target)

    calls = []

    def container_swaps_its_directories():
        # The callback runs after the first entry, then after every hundred: the second call.
        calls.append(1)
        if len(calls) == 2:
            for name in layers:
                os.rename(os.path.join(diff, name), os.path.join(diff, name + ".old"))
                os.symlink(str(secrets), os.path.join(diff, name))

    copy.on_progress = container_swaps_its_directories
    copy.run()
    copied = subprocess.run(
        ["grep", "-rl", "secret", target], capture_output=True, text=True, check=False
    ).stdout
    assert copied == "", "host files reached the copy: %s" % copied
    # A directory the listing saw before the swap left no entry (it was skipped for the next
    # pass); one listed after the swap was copied as the symlink it had become.
    skipped = [
        name
        for name in layers
        if not os.path.lexists(os.path.join(target, "overlay2", "ccc", "diff", name))
    ]
    assert skipped, "no directory was swapped between its listing and its descent"
    copy.run()
    for name in layers:
        assert os.readlink(os.path.join(target, "overlay2", "ccc", "diff", name)) == str(secrets)
    assert compare_trees(source, target, hash_paths=True) == (0, [])


def test_paths_longer_than_path_max_are_copied(make_loopfs):
    source = os.path.join(make_loopfs("ext4", size_mb=64).mount_point, "docker")
    target = os.path.join(make_loopfs("xfs").mount_point, "docker")
    os.makedirs(source)
    name = "d" * 200
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _level in range(30):  # 30 * 201 bytes: beyond PATH_MAX (4096)
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(leaf, b"deep\n")
        os.close(leaf)
    finally:
        os.close(fd)
    TreeCopy(source, target).run()
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _level in range(30):
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("leaf", os.O_RDONLY, dir_fd=fd)
        assert os.read(leaf, 100) == b"deep\n"
        assert os.fstat(leaf).st_mode & 0o777 == 0o640
        os.close(leaf)
    finally:
        os.close(fd)


def test_a_hole_at_the_end_of_a_file_stays_a_hole_on_xfs(make_loopfs):
    """containerd's bolt database (meta.db) is such a file: its size runs past its data."""
    source = os.path.join(make_loopfs("ext4").mount_point, "docker")
    target = os.path.join(make_loopfs("xfs").mount_point, "docker")
    database = os.path.join(source, "containerd", "daemon", "meta.db")
    os.makedirs(os.path.dirname(database))
    with open(database, "wb") as handle:
        handle.truncate(128 << 10)
        handle.write(os.urandom(96 << 10))
    copy = TreeCopy(source, target)
    try:
        copy.run()
    finally:
        copy.close()
    copied = os.stat(os.path.join(target, "containerd", "daemon", "meta.db"))
    assert (copied.st_size, copied.st_blocks * 512) == (128 << 10, 96 << 10)
    assert compare_trees(source, target, hash_paths=True) == (0, [])
