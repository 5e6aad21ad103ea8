import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._aufs import (
    check_aufs_container,
    parse_branch,
    read_aufs_branches,
    read_aufs_parents,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import read_mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._overlay_mounts import (
    mounts_by_point,
)

HOST = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "aufs")
DATA_ROOT = "/var/lib/docker"
DIFF = DATA_ROOT + "/aufs/diff/"


@pytest.fixture(scope="module")
def mounts():
    return mounts_by_point(read_mountinfo(os.path.join(HOST, "mountinfo.txt")))


def test_parse_branch():
    assert parse_branch("/a/b=ro+wh\n") == ("/a/b", "ro+wh")
    assert parse_branch("/a/b=c=rw") == ("/a/b=c", "rw")
    assert parse_branch("/a/b") == ("/a/b", None)


def test_branches_are_read_in_index_order_and_brid_files_ignored():
    assert read_aufs_branches("5a1b2c3d", HOST) == [
        (DIFF + "c0ffee", "rw"),
        (DIFF + "c0ffee-init", "ro+wh"),
        (DIFF + "base2", "ro+wh"),
        (DIFF + "base1", "ro+wh"),
    ]
    assert read_aufs_branches("ffffffff", HOST) is None


def test_parents_nearest_first():
    assert read_aufs_parents(DATA_ROOT, "c0ffee", HOST) == ["c0ffee-init", "base2", "base1"]
    assert read_aufs_parents(DATA_ROOT, "base1", HOST) == []
    assert read_aufs_parents(DATA_ROOT, "nope", HOST) is None


def test_branches_matching_the_layer_metadata_are_ok(mounts):
    problems, details = check_aufs_container("1111aaaa", DATA_ROOT, True, mounts, HOST)
    assert problems == []
    assert details == {
        "merged_dir": DATA_ROOT + "/aufs/mnt/c0ffee",
        "mounted": True,
        "layers": 3,
    }


def test_a_branch_list_missing_a_layer_is_named(mounts):
    problems, details = check_aufs_container("2222bbbb", DATA_ROOT, True, mounts, HOST)
    assert [(p["check"], p["path"]) for p in problems] == [
        ("aufs_branches", DATA_ROOT + "/aufs/mnt/deadbe")
    ]
    assert DIFF + "base1=ro+wh" in problems[0]["expected"]
    assert DIFF + "base1" not in problems[0]["found"]


def test_a_running_container_without_its_aufs_mount_is_named():
    problems, details = check_aufs_container("1111aaaa", DATA_ROOT, True, {}, HOST)
    assert [(p["check"], p["found"]) for p in problems] == [("merged_mount", "no mount")]
    assert details["mounted"] is False


def test_a_stopped_container_needs_its_metadata():
    problems, _details = check_aufs_container("1111aaaa", DATA_ROOT, False, {}, HOST)
    assert problems == []
    problems, _details = check_aufs_container("3333cccc", DATA_ROOT, False, {}, HOST)
    assert [p["check"] for p in problems] == ["aufs_mount_id"]
