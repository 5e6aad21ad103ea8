"""Passes that visit only what changed: fanotify records the changes of the source's
filesystem while a copy is made, and the next pass visits those directories (and the ones the
racy-clean rule names) instead of the whole tree. On real filesystems, with the changes a
running engine makes: writes in place of the same size on ext4 with one-second timestamps,
writes through an overlay mount into a container's upper layer, a write through a shared memory
map, renamed and new directories, removals, attributes, hard links."""

import mmap
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
    TreeCopy,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_manifest import (  # noqa: E402
    compare_trees,
)

LAYERS = 12
DIRECTORIES_PER_LAYER = 5
FILES_PER_DIRECTORY = 10


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def build_layers(source):
    """Layers of small files, as overlay2 keeps them; returns the layer diff directories."""
    diffs = []
    for layer in range(LAYERS):
        diff = os.path.join(source, "overlay2", "layer%02d" % layer, "diff")
        for directory in range(DIRECTORIES_PER_LAYER):
            for index in range(FILES_PER_DIRECTORY):
                _write(
                    os.path.join(diff, "usr", "d%d" % directory, "f%d" % index),
                    b"%02d-%d-%d " % (layer, directory, index) * 20,
                )
        os.makedirs(os.path.join(source, "overlay2", "layer%02d" % layer, "work"))
        diffs.append(diff)
    # One file with two more names: beside it, and in another layer.
    shared = os.path.join(diffs[2], "usr", "d0", "f0")
    os.link(shared, shared + ".link")
    os.link(shared, os.path.join(diffs[3], "usr", "d0", "shared"))
    return diffs


def count_directories(root):
    return sum(1 for _entry in os.walk(root))


@pytest.fixture
def filesystems(make_loopfs):
    # The source keeps one-second timestamps (128-byte inodes), as many production hosts do.
    source_fs = make_loopfs("ext4", size_mb=256, mkfs_args=("-I", "128"))
    target_fs = make_loopfs("xfs")
    source = os.path.join(source_fs.mount_point, "docker")
    return source, os.path.join(target_fs.mount_point, "docker")


@pytest.fixture
def copied_layers(filesystems):
    """``(source, target, diffs, copy)``: layers older than the racy-clean window, copied once
    by ``copy``, which records the changes made since."""
    source, target = filesystems
    diffs = build_layers(source)
    time.sleep(RACY_WINDOW_NS / 1e9)
    copy = TreeCopy(source, target)
    try:
        copy.run()
        yield source, target, diffs, copy
    finally:
        copy.close()


def test_a_pass_after_recorded_changes_visits_only_those_and_misses_nothing(filesystems, tmp_path):
    source, target = filesystems
    diffs = build_layers(source)
    time.sleep(RACY_WINDOW_NS / 1e9)
    copy = TreeCopy(source, target)
    try:
        first = copy.run()
        assert first["visited"] == "whole tree" and copy.watch_unavailable is None
        total = count_directories(source)

        # A container running on the top layer writes through its overlay mount.
        container = os.path.join(source, "overlay2", "container")
        upper = os.path.join(container, "diff")
        work = os.path.join(container, "work")
        merged = os.path.join(container, "merged")
        for path in (upper, work, merged):
            os.makedirs(path)
        subprocess.run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                "lowerdir=%s:%s,upperdir=%s,workdir=%s" % (diffs[1], diffs[0], upper, work),
                merged,
            ],
            check=True,
        )
        try:
            with open(os.path.join(merged, "usr", "d3", "f4"), "r+b") as handle:
                handle.write(b"copied up")  # a copy-up into the upper layer, then a write
            _write(os.path.join(merged, "var", "log", "app.log"), b"started\n")
        finally:
            subprocess.run(["umount", merged], check=True)

        # A write through one name of a file with three: only its own directory records it.
        with open(os.path.join(diffs[2], "usr", "d0", "f0"), "ab") as handle:
            handle.write(b"appended")
        # Writes in place of the same size, the same second as the first pass: the snapshot
        # (size, ctime with one-second timestamps) cannot tell; the recorded change can.
        same_size = os.path.join(diffs[5], "usr", "d2", "f7")
        with open(same_size, "r+b") as handle:
            handle.write(b"XX")
        with open(os.path.join(diffs[6], "usr", "d1", "f1"), "r+b") as handle:
            mapped = mmap.mmap(handle.fileno(), 4)
            mapped[0:4] = b"MMAP"
            mapped.close()
        os.chmod(os.path.join(diffs[7], "usr", "d0", "f0"), 0o600)
        os.setxattr(os.path.join(diffs[8], "usr", "d4"), "trusted.overlay.opaque", b"y")
        os.unlink(os.path.join(diffs[9], "usr", "d2", "f3"))
        os.rename(os.path.join(diffs[10], "usr", "d1"), os.path.join(diffs[10], "usr", "moved"))
        _write(os.path.join(diffs[11], "new", "deep", "er", "file"), b"new")

        second = copy.run()
        assert second["visited"] == "changes"
        assert second["directories"] < total // 2
        # Inside the directories visited, only the entries recorded (and their way) are read.
        assert second["entries"] < first["entries"] // 4
        assert compare_trees(source, target, hash_paths=True) == (0, [])
        with open(os.path.join(target, os.path.relpath(same_size, source)), "rb") as handle:
            assert handle.read(2) == b"XX"
        # Nothing changed since: the next pass visits only what the racy-clean rule names.
        time.sleep(RACY_WINDOW_NS / 1e9)
        copy.run()
        third = copy.run()
        assert third["visited"] == "changes" and third["copied"] == 0
        assert third["directories"] < 5
    finally:
        copy.close()


def test_every_name_of_a_file_written_through_one_of_them_is_copied(copied_layers):
    source, target, diffs, copy = copied_layers
    with open(os.path.join(diffs[3], "usr", "d0", "shared"), "r+b") as handle:
        handle.write(b"rewritten through the third name")
    second = copy.run()
    assert second["visited"] == "changes"
    names = [
        os.path.join(target, "overlay2", "layer02", "diff", "usr", "d0", "f0"),
        os.path.join(target, "overlay2", "layer02", "diff", "usr", "d0", "f0.link"),
        os.path.join(target, "overlay2", "layer03", "diff", "usr", "d0", "shared"),
    ]
    assert len({os.stat(name).st_ino for name in names}) == 1
    with open(names[1], "rb") as handle:
        assert handle.read().startswith(b"rewritten through the third name")
    assert compare_trees(source, target, hash_paths=True) == (0, [])


def test_a_new_hard_link_into_an_unvisited_directory_makes_a_whole_tree_pass(copied_layers):
    source, target, diffs, copy = copied_layers
    # The link is a change of diffs[1]/usr/d0 only: the file's own directory records none,
    # and a pass that copied the new member alone would split the group on the target.
    original = os.path.join(diffs[0], "usr", "d0", "f0")
    os.link(original, os.path.join(diffs[1], "usr", "d0", "linked"))
    second = copy.run()
    assert second["visited"] == "whole tree"
    assert compare_trees(source, target, hash_paths=True) == (0, [])
    copied = os.stat(os.path.join(target, os.path.relpath(original, source)))
    linked = os.stat(os.path.join(target, "overlay2", "layer01", "diff", "usr", "d0", "linked"))
    assert copied.st_ino == linked.st_ino


def test_where_changes_cannot_be_recorded_every_pass_walks_the_whole_tree(filesystems, make_loopfs):
    source, target = filesystems
    build_layers(source)
    beside = os.path.join(os.path.dirname(source), "beside")
    for copy in (TreeCopy(source, target, watch_changes=False), TreeCopy(source, beside)):
        try:
            copy.run()
            os.unlink(os.path.join(source, "overlay2", "layer03", "diff", "usr", "d0", "f0"))
            second = copy.run()
            assert second["visited"] == "whole tree" and second["removed"] == 1
            assert compare_trees(source, copy.target) == (0, [])
        finally:
            copy.close()
        _write(os.path.join(source, "overlay2", "layer03", "diff", "usr", "d0", "f0"), b"back")
    assert "the target is on the source's filesystem" in copy.watch_unavailable


def test_without_the_capability_to_watch_a_filesystem_the_reason_is_given(filesystems):
    source, _target = filesystems
    os.makedirs(source)
    # Root without CAP_SYS_ADMIN, as in a container that was not given it.
    probe = (
        "import sys; sys.path.insert(0, %r)\n"
        "from ansible_collections.dockerhost.storage.plugins.module_utils import _change_watch\n"
        "try:\n"
        "    _change_watch.ChangeWatch(%r)\n"
        "except _change_watch.WatchUnavailable as exc:\n"
        "    print(exc)\n" % (collections_root(), source)
    )
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-sys_admin",
            "--inh-caps=-sys_admin",
            sys.executable,
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Operation not permitted" in out


def test_files_made_in_a_set_gid_directory_keep_their_own_group(filesystems):
    source, target = filesystems
    shared = os.path.join(source, "volumes", "shared", "_data")
    _write(os.path.join(shared, "before"), b"root's")
    os.chown(shared, 0, 1234)
    os.chmod(shared, 0o2775)
    time.sleep(RACY_WINDOW_NS / 1e9)
    copy = TreeCopy(source, target)
    try:
        copy.run()
        # Made after the bulk copy: the copy's directory is set-gid by now, and a file made in
        # it takes the directory's group unless the copier gives it the source's.
        _write(os.path.join(shared, "after"), b"root's too")
        os.chown(os.path.join(shared, "after"), 0, 0)
        copy.run()
        copied = os.path.join(target, "volumes", "shared", "_data")
        assert os.stat(copied).st_mode & 0o7777 == 0o2775
        for name in ("before", "after"):
            assert os.stat(os.path.join(copied, name)).st_gid == 0, name
        assert compare_trees(source, target, hash_paths=True) == (0, [])
    finally:
        copy.close()
