import json
import os

import pytest
from overlay_store import graph_data, make_store, short_name

from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (
    Mount,
    read_mountinfo,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mounts_report import (
    check_container,
    summarise,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._overlay_mounts import (
    MAX_LOWER_LAYERS,
    check_running_container,
    check_stopped_container,
    graphdriver_layout,
    mounts_by_point,
    overlay_mounts_by_point,
    parse_overlay_options,
    resolve_layout,
    split_lowerdir,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
HOME = "/var/lib/docker/overlay2"


@pytest.fixture(scope="module")
def mounts():
    mountinfo = os.path.join(FIXTURES, "mountinfo", "overlay-containers.txt")
    return mounts_by_point(read_mountinfo(mountinfo))


def layout_at(mounts, mount_point, home=HOME):
    return resolve_layout(parse_overlay_options(mounts[mount_point].super_options), home)


def test_absolute_lowerdirs_and_options(mounts):
    layout = layout_at(mounts, HOME + "/aaa1/merged")
    assert layout["lowerdirs"] == [
        HOME + "/l/AAAAAAAAAAAAAAAAAAAAAAAAA1",
        HOME + "/l/BBBBBBBBBBBBBBBBBBBBBBBBB1",
    ]
    assert layout["upperdir"] == HOME + "/aaa1/diff"
    assert layout["workdir"] == HOME + "/aaa1/work"
    assert layout["relative"] is False
    assert layout["options"] == {"rw": True, "index": "off", "redirect_dir": "on"}


def test_relative_lowerdirs_resolve_against_the_overlay2_home(mounts):
    layout = layout_at(mounts, HOME + "/bbb2/merged")
    assert layout["relative"] is True
    assert layout["lowerdirs"] == [
        HOME + "/l/CCCCCCCCCCCCCCCCCCCCCCCCC2",
        HOME + "/l/BBBBBBBBBBBBBBBBBBBBBBBBB1",
    ]
    assert layout["upperdir"] == HOME + "/bbb2/diff"
    assert layout["workdir"] == HOME + "/bbb2/work"


def test_lowerdir_plus_entries_are_one_layer_each_in_order(mounts):
    layout = layout_at(mounts, HOME + "/ccc3/merged")
    assert layout["lowerdir_form"] == "lowerdir+"
    assert layout["lowerdirs"] == [
        HOME + "/l/DDDDDDDDDDDDDDDDDDDDDDDDD3",
        HOME + "/l/BBBBBBBBBBBBBBBBBBBBBBBBB1",
    ]
    assert layout["options"]["userxattr"] is True


def test_escaped_space_tab_newline_backslash_comma_and_colon(mounts):
    home = "/srv/docker data/overlay2"
    layout = layout_at(mounts, home + "/ddd4/merged", home)
    assert layout["lowerdirs"] == [
        home + "/l/EEEEEEEEEEEEEEEEEEEEEEEEE4",
        "/srv/odd\ttab\nnewline,comma:colon\\back/diff",
    ]
    assert layout["upperdir"] == home + "/ddd4/diff"
    assert layout["options"] == {"rw": True, "index": "on", "xino": "off"}


def test_commas_the_kernel_escaped_stay_in_lowerdir_plus_paths(mounts):
    layout = layout_at(mounts, "/srv/comma,dir/merged", "/srv")
    assert layout["lowerdirs"] == ["/srv/comma,dir/l/F", "/srv/comma,dir/l/G"]
    assert layout["datadirs"] == ["/srv/data"]
    assert layout["upperdir"] == "/srv/comma,dir/u"
    assert layout["workdir"] == "/srv/comma,dir/w"
    assert layout["options"] == {"rw": True, "redirect_dir": "nofollow", "metacopy": "on"}


def test_split_lowerdir_keeps_escaped_colons():
    assert split_lowerdir("/a:/b\\:c:/d") == ["/a", "/b:c", "/d"]
    assert split_lowerdir("") == []


def overlay_mount(point, options):
    return Mount(1, 0, "0:1", "/", point, "rw", (), "overlay", "overlay", options)


def live_store(tmp_path, images=("base1", "base2")):
    data_root = str(tmp_path / "docker")
    home = make_store(data_root, images=images, containers=[("c1", "layer1")])
    return home, graph_data(home, "layer1", images)


def mount_options(home, data, relative=False):
    lowers = ["layer1-init"] + ["base2", "base1"]
    prefix = "" if relative else home + "/"
    return "rw,lowerdir=%s,upperdir=%s,workdir=%s" % (
        ":".join(prefix + "l/" + short_name(layer) for layer in lowers),
        prefix + "layer1/diff",
        prefix + "layer1/work",
    )


@pytest.mark.parametrize("relative", [False, True])
def test_a_correct_mount_has_no_problems(tmp_path, relative):
    home, data = live_store(tmp_path)
    mount = overlay_mount(data["MergedDir"], mount_options(home, data, relative))
    problems, details = check_running_container("web", data, {mount.mount_point: mount}, home)
    assert problems == []
    assert details["mounted"] is True
    assert details["layers"] == 3
    assert details["relative_paths"] is relative


def test_an_unmounted_merged_dir_is_named(tmp_path):
    home, data = live_store(tmp_path)
    problems, details = check_running_container("web", data, {}, home)
    assert details["mounted"] is False
    assert [(p["container"], p["check"], p["path"], p["expected"]) for p in problems] == [
        ("web", "merged_mount", data["MergedDir"], "an overlay mount")
    ]
    assert problems[0]["found"].startswith("no mount")


def test_a_dangling_short_link_is_named(tmp_path):
    home, data = live_store(tmp_path)
    mount = overlay_mount(data["MergedDir"], mount_options(home, data))
    link = os.path.join(home, "l", short_name("base2"))
    os.unlink(link)
    problems, _details = check_running_container("web", data, {mount.mount_point: mount}, home)
    checks = {p["check"]: p for p in problems}
    assert checks["lower_link"]["path"] == link
    assert checks["lower_link"]["found"] == "nothing (the link is missing)"
    # The kernel's chain no longer resolves to the engine's LowerDir either.
    assert "lower_chain" in checks


def test_a_different_upperdir_is_named(tmp_path):
    home, data = live_store(tmp_path)
    options = mount_options(home, data).replace("layer1/diff", "layer1-init/diff")
    mount = overlay_mount(data["MergedDir"], options)
    problems, _details = check_running_container("web", data, {mount.mount_point: mount}, home)
    assert [(p["check"], p["found"]) for p in problems] == [
        ("upperdir", "upperdir=%s/layer1-init/diff" % home)
    ]
    assert data["UpperDir"] in problems[0]["expected"]


def test_more_than_128_lowers_is_named(tmp_path):
    images = ["layer%03d" % n for n in range(MAX_LOWER_LAYERS)]
    home, data = live_store(tmp_path, images)
    lowers = ["layer1-init"] + list(reversed(images))
    options = "lowerdir=%s,upperdir=%s,workdir=%s" % (
        ":".join("l/" + short_name(layer) for layer in lowers),
        "layer1/diff",
        "layer1/work",
    )
    mount = overlay_mount(data["MergedDir"], options)
    problems, details = check_running_container("web", data, {mount.mount_point: mount}, home)
    assert details["layers"] == MAX_LOWER_LAYERS + 1
    assert [(p["check"], p["found"]) for p in problems] == [("layer_count", "129 lower layers")]


def test_a_stopped_container_needs_its_layer_directories(tmp_path):
    home, data = live_store(tmp_path)
    assert check_stopped_container("web", data) == []
    os.rename(os.path.join(home, "base1"), os.path.join(home, "base1.moved"))
    problems = check_stopped_container("web", data)
    assert [(p["check"], p["path"]) for p in problems] == [
        ("layer_dir", os.path.join(home, "base1", "diff"))
    ]


def test_the_containerd_store_is_not_checked_and_says_why():
    with open(os.path.join(FIXTURES, "engine", "containers", "inspect-29-containerd.json")) as f:
        inspection = json.load(f)
    driver, data, reason = graphdriver_layout(inspection)
    assert (driver, data) == ("overlayfs", None)
    assert "containerd image store" in reason
    entry = check_container(inspection, "web", {}, "/var/lib/docker")
    assert entry["status"] == "not_checked"
    assert entry["running"] is True
    assert entry["reason"] == reason
    store = {"problems": [], "orphaned_layers": []}
    summary, ok = summarise([entry], store, {})
    assert summary["not_checked"] == 1
    assert summary["ok"] == 0
    assert ok is True  # nothing was found wrong; not_checked says what was not looked at


def test_a_snapshotter_without_data_is_the_containerd_store_when_the_engine_says_so():
    inspection = {"State": {"Running": True}, "GraphDriver": {"Name": "overlayfs", "Data": None}}
    driver, data, reason = graphdriver_layout(inspection, containerd_store=True)
    assert (driver, data) == ("overlayfs", None)
    assert "containerd image store, snapshotter overlayfs" in reason


def test_a_graphdriver_without_directories_is_not_checked_and_named():
    inspection = {"State": {"Running": True}, "GraphDriver": {"Name": "vfs", "Data": None}}
    entry = check_container(inspection, "web", {}, "/var/lib/docker")
    assert entry["status"] == "not_checked"
    assert entry["reason"] == "the engine reports no layer directories for driver vfs"


def test_exactly_128_lowers_is_within_the_kernel_limit(tmp_path):
    images = ["layer%03d" % n for n in range(MAX_LOWER_LAYERS - 1)]
    home, data = live_store(tmp_path, images)
    lowers = ["layer1-init"] + list(reversed(images))
    options = "lowerdir=%s,upperdir=%s,workdir=%s" % (
        ":".join("l/" + short_name(layer) for layer in lowers),
        "layer1/diff",
        "layer1/work",
    )
    mount = overlay_mount(data["MergedDir"], options)
    problems, details = check_running_container("web", data, {mount.mount_point: mount}, home)
    assert details["layers"] == 128
    assert problems == []


def test_a_short_link_to_a_directory_that_is_not_a_diff_is_named(tmp_path):
    home, data = live_store(tmp_path)
    mount = overlay_mount(data["MergedDir"], mount_options(home, data))
    link = os.path.join(home, "l", short_name("base2"))
    os.unlink(link)
    os.symlink("../base2/work", link)
    problems, _details = check_running_container("web", data, {mount.mount_point: mount}, home)
    lower = [p for p in problems if p["check"] == "lower_link"]
    assert [(p["path"], p["expected"], p["found"]) for p in lower] == [
        (
            link,
            "a link to ../<layer id>/diff under %s" % home,
            "a link to %s" % os.path.join(home, "base2", "work"),
        )
    ]


def test_a_short_link_to_a_diff_outside_the_overlay2_home_is_named(tmp_path):
    home, data = live_store(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "base2" / "diff"
    elsewhere.mkdir(parents=True)
    mount = overlay_mount(data["MergedDir"], mount_options(home, data))
    link = os.path.join(home, "l", short_name("base2"))
    os.unlink(link)
    os.symlink(str(elsewhere), link)
    problems, _details = check_running_container("web", data, {mount.mount_point: mount}, home)
    lower = [p for p in problems if p["check"] == "lower_link"]
    assert [(p["path"], p["found"]) for p in lower] == [(link, "a link to %s" % elsewhere)]


def test_a_lower_path_that_is_not_a_short_link_only_has_to_exist(tmp_path):
    home, data = live_store(tmp_path)
    options = mount_options(home, data).replace(
        "%s/l/%s" % (home, short_name("base1")), "%s/base1/diff" % home
    )
    mount = overlay_mount(data["MergedDir"], options)
    problems, details = check_running_container("web", data, {mount.mount_point: mount}, home)
    assert problems == []
    os.rename(os.path.join(home, "base1"), os.path.join(home, "base1.moved"))
    problems, details = check_running_container("web", data, {mount.mount_point: mount}, home)
    lower = [p for p in problems if p["check"] == "lower_link"]
    assert [(p["path"], p["expected"], p["found"]) for p in lower] == [
        ("%s/base1/diff" % home, "an existing layer directory", "nothing there")
    ]


def test_another_filesystem_on_the_merged_dir_is_named(tmp_path):
    home, data = live_store(tmp_path)
    tmpfs = Mount(1, 0, "0:2", "/", data["MergedDir"], "rw", (), "tmpfs", "none", "rw")
    problems, details = check_running_container("web", data, {tmpfs.mount_point: tmpfs}, home)
    assert details["mounted"] is False
    assert [(p["check"], p["found"]) for p in problems] == [
        ("merged_mount", "a tmpfs mount of none")
    ]


def test_a_merged_dir_reached_through_a_link_is_found_by_its_real_path(tmp_path):
    home, data = live_store(tmp_path)
    mount = overlay_mount(data["MergedDir"], mount_options(home, data))
    alias = str(tmp_path / "alias")
    os.symlink(os.path.dirname(data["MergedDir"]), alias)
    aliased = dict(data, MergedDir=os.path.join(alias, "merged"))
    problems, details = check_running_container("web", aliased, {mount.mount_point: mount}, home)
    assert problems == []
    assert details["mounted"] is True


def test_a_short_link_that_cannot_be_read_is_named_so(tmp_path):
    home, data = live_store(tmp_path)
    mount = overlay_mount(data["MergedDir"], mount_options(home, data))
    link = os.path.join(home, "l", short_name("base2"))
    os.unlink(link)

    def unreadable(path):
        raise PermissionError(13, "Permission denied")

    problems, _details = check_running_container(
        "web", data, {mount.mount_point: mount}, home, readlink=unreadable
    )
    lower = [p for p in problems if p["check"] == "lower_link"]
    assert [p["found"] for p in lower] == ["an unreadable entry (Permission denied)"]


def test_only_overlay_mounts_are_kept_and_the_last_one_on_a_point_wins():
    first = overlay_mount("/m", "lowerdir=/a")
    second = overlay_mount("/m", "lowerdir=/b")
    tmpfs = Mount(1, 0, "0:2", "/", "/t", "rw", (), "tmpfs", "none", "rw")
    assert overlay_mounts_by_point([first, tmpfs, second]) == {"/m": second}


def test_an_empty_lowerdir_and_an_empty_option_add_nothing():
    layout = parse_overlay_options(",rw,lowerdir=,upperdir=/u,workdir=/w")
    assert layout["lowerdirs"] == []
    assert (layout["upperdir"], layout["workdir"]) == ("/u", "/w")
    assert layout["options"] == {"rw": True}
    assert split_lowerdir("/a::/b") == ["/a", "/b"]


def test_a_graphdriver_with_data_in_the_containerd_store_is_checked_as_directories():
    data = {"MergedDir": "/m", "UpperDir": "/u", "LowerDir": "/l", "WorkDir": "/w"}
    inspection = {"GraphDriver": {"Name": "overlay2", "Data": data}}
    assert graphdriver_layout(inspection, containerd_store=True) == ("overlay2", data, None)
    empty = {"GraphDriver": {"Name": "overlay2", "Data": {}}}
    assert graphdriver_layout(empty)[2] == (
        "the engine reports no layer directories for driver overlay2"
    )
