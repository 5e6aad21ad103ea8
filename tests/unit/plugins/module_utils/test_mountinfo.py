import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (
    mount_for_path,
    nearest_existing_ancestor,
    parse_mountinfo,
    parse_mountinfo_line,
    read_mountinfo,
    split_options,
    unescape_mount_field,
)

FIXTURE = os.path.join(
    os.path.dirname(__file__), "..", "..", "fixtures", "mountinfo", "docker-host.txt"
)


@pytest.fixture(scope="module")
def mounts():
    return read_mountinfo(FIXTURE)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("/srv/my\\040data", "/srv/my data"),
        ("/a\\011b", "/a\tb"),
        ("/a\\012b", "/a\nb"),
        ("/back\\134slash", "/back\\slash"),
        ("/plain", "/plain"),
    ],
)
def test_unescape_mount_field(raw, expected):
    assert unescape_mount_field(raw) == expected


def test_parse_escaped_mount_points_and_optional_fields(mounts):
    by_id = {m.mount_id: m for m in mounts}
    assert by_id[31].mount_point == "/srv/my data"
    assert by_id[32].mount_point == "/srv/my data/tab\tdir"
    assert by_id[32].root == "/nested"
    assert by_id[42].mount_point == "/srv/back\\slash"
    assert by_id[30].optional_fields == ("shared:20",)
    assert by_id[120].optional_fields == ()
    assert by_id[30].fstype == "xfs" and by_id[30].source == "/dev/sdb1"


def test_overlay_super_options_keep_lowerdir_chain(mounts):
    overlay = [m for m in mounts if m.mount_id == 121][0]
    options = split_options(overlay.super_options)
    assert options["lowerdir"] == "l/AAAAAAAAAAAAAAAAAAAAAAAAAA:l/BBBBBBBBBBBBBBBBBBBBBBBBBB"
    assert options["upperdir"] == "77aa01/diff"
    assert options["rw"] is True


@pytest.mark.parametrize(
    "path, mount_point",
    [
        ("/var/lib/docker", "/var/lib/docker"),
        ("/var/lib/docker/overlay2", "/var/lib/docker"),
        ("/var/lib/dockerfoo", "/"),  # a prefix of the string is not a parent directory
        ("/srv/my data/x", "/srv/my data"),
        ("/srv/my data/tab\tdir/y", "/srv/my data/tab\tdir"),
        ("/etc", "/"),
    ],
)
def test_mount_for_path_picks_deepest_mount(mounts, path, mount_point):
    assert mount_for_path(mounts, path).mount_point == mount_point


def test_mount_for_path_takes_the_mount_on_top(mounts):
    assert mount_for_path(mounts, "/mnt/x").source == "second"


def test_malformed_line_is_named():
    with pytest.raises(ValueError, match="no ' - ' separator"):
        parse_mountinfo_line("22 1 8:1 / / rw,relatime shared:1 ext4 /dev/sda1 rw")


def test_parse_ignores_blank_lines():
    text = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\n"
    assert len(parse_mountinfo(text)) == 1


def test_nearest_existing_ancestor(tmp_path):
    (tmp_path / "a").mkdir()
    assert nearest_existing_ancestor(str(tmp_path / "a" / "b" / "c")) == str(tmp_path / "a")
    assert nearest_existing_ancestor(str(tmp_path / "a")) == str(tmp_path / "a")
    assert nearest_existing_ancestor("/nonexistent-root-dir/x") == "/"


def test_live_mountinfo_has_root():
    assert mount_for_path(read_mountinfo(), "/").mount_point == "/"
