import os
import shutil
import stat

import pytest
from prerequisites import skip_or_fail

from ansible_collections.dockerhost.storage.plugins.module_utils import _tree_manifest
from ansible_collections.dockerhost.storage.plugins.module_utils._tree_manifest import (
    Differences,
    compare_entries,
    compare_trees,
    compare_trees_in_detail,
    file_type,
)


@pytest.fixture
def xattrs(monkeypatch):
    """Extended attributes by path, in place of the filesystem's (tmp_path may keep none)."""
    values = {}
    monkeypatch.setattr(_tree_manifest, "list_xattrs", lambda path: dict(values.get(path, {})))
    return values


def make_tree(root):
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "a"), "w") as handle:
        handle.write("alpha")
    with open(os.path.join(root, "etc", "b"), "w") as handle:
        handle.write("bravo")
    os.symlink("a", os.path.join(root, "etc", "link"))
    return root


def copy_of(source, target):
    shutil.copytree(source, target, symlinks=True)
    # copytree stamps the directories before their entries are written: stamp them again.
    for directory, _dirs, _files in os.walk(source):
        relative = os.path.relpath(directory, source)
        shutil.copystat(directory, os.path.join(target, relative))
    return target


@pytest.fixture
def trees(tmp_path, xattrs):
    source = make_tree(str(tmp_path / "source"))
    return source, copy_of(source, str(tmp_path / "target"))


def test_an_exact_copy_has_no_differences(trees):
    source, target = trees
    assert compare_trees(source, target) == (0, [])
    assert compare_trees(source, target, hash_paths=True) == (0, [])
    found = compare_trees_in_detail(source, target)
    assert (found.count, found.paths, found.paths_complete) == (0, set(), True)


def test_an_extended_attribute_with_another_value_is_a_difference(trees, xattrs):
    source, target = trees
    xattrs[os.path.join(source, "etc", "a")] = {"user.origin": b"registry"}
    xattrs[os.path.join(target, "etc", "a")] = {"user.origin": b"mirror"}
    count, examples = compare_trees(source, target)
    assert count == 1
    assert examples[0].startswith(
        os.path.join("etc", "a") + ": xattrs differs (source [('user.origin'"
    )
    xattrs[os.path.join(target, "etc", "a")] = {"user.origin": b"registry"}
    assert compare_trees(source, target) == (0, [])
    del xattrs[os.path.join(target, "etc", "a")]
    assert compare_trees(source, target)[0] == 1


def test_missing_and_extra_entries_are_named_in_walk_order(trees):
    source, target = trees
    os.unlink(os.path.join(target, "etc", "b"))
    with open(os.path.join(target, "etc", "c"), "w") as handle:
        handle.write("charlie")
    shutil.copystat(os.path.join(source, "etc"), os.path.join(target, "etc"))
    assert compare_trees(source, target) == (
        2,
        [
            "%s is missing from the copy" % os.path.join("etc", "b"),
            "%s is in the copy but not in the source" % os.path.join("etc", "c"),
        ],
    )
    found = compare_trees_in_detail(source, target)
    assert found.paths == {os.path.join("etc", "b"), os.path.join("etc", "c")}


def test_mode_owner_target_and_size_differences_are_named(trees):
    source, target = trees
    os.chmod(os.path.join(target, "etc", "a"), 0o600)
    os.unlink(os.path.join(target, "etc", "link"))
    os.symlink("b", os.path.join(target, "etc", "link"))
    with open(os.path.join(target, "etc", "b"), "a") as handle:
        handle.write("!")
    for name in ("a", "b"):
        shutil.copystat(os.path.join(source, "etc", name), os.path.join(target, "etc", name))
    os.chmod(os.path.join(target, "etc", "a"), 0o600)
    os.utime(
        os.path.join(target, "etc", "link"),
        ns=(0, os.lstat(os.path.join(source, "etc", "link")).st_mtime_ns),
        follow_symlinks=False,
    )
    shutil.copystat(os.path.join(source, "etc"), os.path.join(target, "etc"))
    count, examples = compare_trees(source, target)
    mode = stat.S_IMODE(os.lstat(os.path.join(source, "etc", "a")).st_mode)
    assert examples == [
        "%s: mode differs (source '%04o', copy '0600')" % (os.path.join("etc", "a"), mode),
        "%s: size differs (source 5, copy 6)" % os.path.join("etc", "b"),
        "%s: target differs (source 'a', copy 'b')" % os.path.join("etc", "link"),
    ]
    assert count == 3


def test_content_is_compared_only_where_it_is_hashed(trees):
    source, target = trees
    path = os.path.join(target, "etc", "a")
    with open(path, "w") as handle:
        handle.write("ALPHA")
    shutil.copystat(os.path.join(source, "etc", "a"), path)
    assert compare_trees(source, target) == (0, [])
    for hash_paths in (True, {os.path.join("etc", "a")}):
        count, examples = compare_trees(source, target, hash_paths=hash_paths)
        assert count == 1
        assert examples[0].startswith(os.path.join("etc", "a") + ": sha256 differs")
    assert compare_trees(source, target, hash_paths={os.path.join("etc", "b")}) == (0, [])


def test_a_copy_that_filled_the_holes_of_a_sparse_file_differs_in_extents(tmp_path, xattrs):
    source = tmp_path / "source"
    source.mkdir()
    with open(str(source / "disk"), "wb") as handle:
        handle.write(b"x" * 4096)
        handle.truncate(1 << 24)
    if os.stat(str(source / "disk")).st_blocks * 512 >= 1 << 24:
        skip_or_fail("the filesystem of tmp_path keeps no holes")
    target = tmp_path / "target"
    target.mkdir()
    with open(str(target / "disk"), "wb") as handle:
        handle.write(b"x" * 4096 + b"\0" * ((1 << 24) - 4096))
    for name in ("disk", ""):
        shutil.copystat(str(source / name), str(target / name))
    count, examples = compare_trees(str(source), str(target))
    assert count == 1
    assert examples[0].startswith("disk: extents differs (source [(0, ")
    assert examples[0].endswith("copy None)")


def test_hard_links_are_compared_by_their_groups(trees):
    source, target = trees
    os.link(os.path.join(source, "etc", "a"), os.path.join(source, "etc", "hard"))
    shutil.copy2(os.path.join(source, "etc", "a"), os.path.join(target, "etc", "hard"))
    shutil.copystat(os.path.join(source, "etc"), os.path.join(target, "etc"))
    count, examples = compare_trees(source, target)
    assert examples == [
        "%s: link_group differs (source %r, copy None)"
        % (os.path.join("etc", "hard"), os.path.join("etc", "a"))
    ]
    os.unlink(os.path.join(target, "etc", "hard"))
    os.link(os.path.join(target, "etc", "a"), os.path.join(target, "etc", "hard"))
    shutil.copystat(os.path.join(source, "etc"), os.path.join(target, "etc"))
    assert compare_trees(source, target) == (0, [])


def test_examples_stop_at_the_limit_but_every_difference_counts(trees):
    source, target = trees
    for name in ("a", "b", "link"):
        os.unlink(os.path.join(target, "etc", name))
    shutil.copystat(os.path.join(source, "etc"), os.path.join(target, "etc"))
    count, examples = compare_trees(source, target, limit=2)
    assert count == 3
    assert len(examples) == 2


def test_differences_keep_paths_up_to_their_limit():
    note = Differences(limit=1, path_limit=2)
    for path in ("a", "b", "c"):
        note("%s differs" % path, path)
    assert note.count == 3
    assert note.examples == ["a differs"]
    assert note.paths == {"a", "b"}
    assert note.paths_complete is False


def test_compare_entries_looks_only_at_the_entries_named(trees):
    source, target = trees
    os.chmod(os.path.join(target, "etc", "b"), 0o600)
    assert compare_entries(source, target, [os.path.join("etc", "a")]) == (0, [])
    count, examples = compare_entries(source, target, [os.path.join("etc", "b")])
    assert count == 1 and examples[0].startswith(os.path.join("etc", "b") + ": mode differs")
    os.unlink(os.path.join(target, "etc", "a"))
    with open(os.path.join(target, "etc", "new"), "w"):
        pass
    assert compare_entries(
        source, target, [os.path.join("etc", "a"), os.path.join("etc", "new"), "gone"]
    ) == (
        2,
        [
            "%s is missing from the copy" % os.path.join("etc", "a"),
            "%s is in the copy but not in the source" % os.path.join("etc", "new"),
        ],
    )


def test_compare_entries_names_a_directory_whose_names_differ(trees):
    source, target = trees
    with open(os.path.join(target, "etc", "new"), "w"):
        pass
    shutil.copystat(os.path.join(source, "etc"), os.path.join(target, "etc"))
    assert compare_entries(source, target, [], directories=["etc"]) == (
        1,
        [
            "etc: names differs (source ['a', 'b', 'link'], copy ['a', 'b', 'link', 'new'])",
        ],
    )
    assert compare_entries(source, target, ["etc"]) == (0, [])


def test_compare_entries_refuses_a_copy_linked_to_more_files_than_its_source(trees):
    source, target = trees
    os.link(os.path.join(target, "etc", "a"), os.path.join(target, "stray"))
    assert compare_entries(source, target, [os.path.join("etc", "a")]) == (
        1,
        ["%s: the copy has 2 hard links, the source 1" % os.path.join("etc", "a")],
    )


@pytest.mark.parametrize(
    "mode, name",
    [
        (stat.S_IFDIR, "directory"),
        (stat.S_IFREG, "file"),
        (stat.S_IFLNK, "symlink"),
        (stat.S_IFCHR, "char-device"),
        (stat.S_IFBLK, "block-device"),
        (stat.S_IFIFO, "fifo"),
        (stat.S_IFSOCK, "socket"),
        (0, "unknown"),
    ],
)
def test_file_types(mode, name):
    assert file_type(mode | 0o644) == name


def test_device_nodes_are_compared_by_their_numbers(tmp_path, xattrs):
    source = tmp_path / "source"
    target = tmp_path / "target"
    for root, minor in ((source, 3), (target, 5)):
        root.mkdir()
        try:
            os.mknod(str(root / "null"), stat.S_IFCHR | 0o666, os.makedev(1, minor))
        except PermissionError:
            skip_or_fail("making a device node needs root")
        os.utime(str(root / "null"), ns=(0, 10**9))
        os.utime(str(root), ns=(0, 10**9))
    assert compare_trees(str(source), str(target)) == (
        1,
        ["null: rdev differs (source (1, 3), copy (1, 5))"],
    )
    assert compare_entries(str(source), str(target), ["null"]) == (
        1,
        ["null: rdev differs (source (1, 3), copy (1, 5))"],
    )
