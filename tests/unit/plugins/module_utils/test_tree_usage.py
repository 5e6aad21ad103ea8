"""The breakdown walk on a small tree in a temporary directory, against du itself."""

import os
import shutil
import subprocess

import pytest
from prerequisites import skip_or_fail

from ansible_collections.dockerhost.storage.plugins.module_utils._tree_usage import tree_usage


@pytest.fixture(autouse=True)
def _needs_du():
    if shutil.which("du") is None:
        skip_or_fail("needs GNU du (coreutils)")


def du(path, *options):
    out = subprocess.run(
        ["du", "-x", "-s", *options, path],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, LANG="C", LC_ALL="C"),
    ).stdout
    return int(out.split()[0])


def write(path, size=1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"x" * size)


@pytest.fixture
def data_root(tmp_path):
    """An overlay2-shaped data-root: layers of different sizes, links within and across
    layers and top-level directories, symlinks, an empty directory, a top-level file."""
    root = tmp_path / "docker"
    (root / "overlay2" / "l").mkdir(parents=True)
    (root / "image").mkdir()
    for layer, files in (("aaa", 5), ("bbb", 40), ("ccc", 12), ("ddd", 0)):
        diff = root / "overlay2" / layer / "diff"
        diff.mkdir(parents=True)
        (root / "overlay2" / layer / "link").write_text(layer.upper())
        os.symlink("../%s/diff" % layer, str(root / "overlay2" / "l" / layer.upper()))
        for index in range(files):
            write(str(diff / "usr" / ("f%d" % index)), size=index * 700)
    os.link(str(root / "overlay2/bbb/diff/usr/f1"), str(root / "overlay2/bbb/diff/usr/h1"))
    os.link(str(root / "overlay2/bbb/diff/usr/f2"), str(root / "overlay2/ccc/diff/usr/h2"))
    big = str(root / "volumes" / "v" / "_data" / "big")
    write(big, size=100000)
    os.link(big, str(root / "image" / "big-link"))
    os.link(big, str(root / "overlay2" / "aaa" / "diff" / "big-link"))
    (root / "containers" / "empty").mkdir(parents=True)
    write(str(root / "engine-id"), size=36)
    return str(root)


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_totals_equal_du(data_root, workers):
    usage = tree_usage(data_root, workers=workers)
    assert usage["inodes"] == du(data_root, "--inodes")
    assert usage["bytes"] == du(data_root, "-B1")
    assert usage["skipped"] == 0
    assert 1 + sum(item["inodes"] for item in usage["directories"].values()) == usage["inodes"]


def test_multi_link_inodes_count_in_the_first_directory_by_name(data_root):
    one = tree_usage(data_root, workers=1)
    two = tree_usage(data_root, workers=2)
    assert one == two
    assert tree_usage(data_root) == one  # the default: as many walkers as WORKERS says
    # volumes/v/_data/big is also image/big-link and overlay2/aaa/diff/big-link: image wins.
    image = one["directories"]["image"]
    assert image["inodes"] == du(os.path.join(data_root, "image"), "--inodes")
    volumes = os.path.join(data_root, "volumes")
    assert one["directories"]["volumes"]["inodes"] == du(volumes, "--inodes") - 1
    assert one["directories"]["engine-id"]["inodes"] == 1


def test_top_layers_most_inodes_first(data_root):
    layers = tree_usage(data_root, top_layers=2)["top_layers"]
    assert [layer["id"] for layer in layers] == ["bbb", "ccc"]
    bbb = os.path.join(data_root, "overlay2", "bbb")
    # f1 and its link h1 count once
    assert layers[0] == {
        "id": "bbb",
        "parent": "overlay2",
        "inodes": du(bbb, "--inodes"),
        "bytes": du(bbb, "-B1"),
    }
    assert tree_usage(data_root, top_layers=0)["top_layers"] == []
    assert len(tree_usage(data_root, top_layers=10)["top_layers"]) == 4  # l is not a layer


def test_a_missing_data_root_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        tree_usage(str(tmp_path / "absent"))


def test_a_remapped_store_is_broken_down_by_its_own_entries(data_root):
    # userns-remap: dockerd keeps its store in <data-root>/<uid>.<gid>; an unremapped store
    # left beside it stays a top-level entry of its own.
    remapped = os.path.join(data_root, "100000.100000")
    os.makedirs(os.path.join(remapped, "overlay2", "l"))
    os.makedirs(os.path.join(remapped, "image"))
    for index in range(30):
        write(os.path.join(remapped, "overlay2", "eee", "diff", "f%d" % index), size=2000)
    write(os.path.join(remapped, "containers", "c1", "hostname"), size=10)
    usage = tree_usage(data_root, top_layers=2, workers=1, store="100000.100000")
    assert usage["inodes"] == du(data_root, "--inodes")
    assert usage["bytes"] == du(data_root, "-B1")
    names = set(usage["directories"])
    assert {"100000.100000/overlay2", "100000.100000/image", "100000.100000/containers"} <= names
    assert {"overlay2", "volumes", "100000.100000"} <= names
    assert usage["directories"]["100000.100000"]["inodes"] == 1  # the directory itself
    assert [(layer["parent"], layer["id"]) for layer in usage["top_layers"]] == [
        ("overlay2", "bbb"),
        ("100000.100000/overlay2", "eee"),
    ]
    # Without the store named, the remapped root is one opaque entry and holds no layers.
    plain = tree_usage(data_root, top_layers=10, workers=1)
    assert "100000.100000/overlay2" not in plain["directories"]
    assert all(layer["parent"] == "overlay2" for layer in plain["top_layers"])
