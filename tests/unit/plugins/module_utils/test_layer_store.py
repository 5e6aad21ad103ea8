import os

import pytest
from overlay_store import make_store, short_name

from ansible_collections.dockerhost.storage.plugins.module_utils._layer_store import (
    check_layer_store,
    disk_usage,
)

IMAGES = ("base1", "base2")

ORPHAN = "f00d" * 16  # named as the layer store names layer directories


@pytest.fixture
def store(tmp_path):
    data_root = str(tmp_path / "docker")
    home = make_store(data_root, images=IMAGES, containers=[("c1", "layer1"), ("c2", "layer2")])
    return data_root, home


def findings(report):
    return [(p["check"], p["path"]) for p in report["problems"]]


def test_a_sound_store_has_no_problems_and_no_orphans(store):
    data_root, home = store
    report = check_layer_store(data_root, known_containers={"c1", "c2"})
    assert report["checked"] is True
    assert report["problems"] == []
    assert report["layers"] == 6  # two image layers, two containers with their -init layers
    assert report["links"] == 6
    assert report["orphaned_layers"] == []


def test_a_deleted_short_link_is_named_where_it_is_used(store):
    data_root, home = store
    os.unlink(os.path.join(home, "l", short_name("base1")))
    report = check_layer_store(data_root)
    # base1's own link file, and every lower file that chains through base1.
    assert ("store_link_file", os.path.join(home, "base1", "link")) in findings(report)
    for layer in ("base2", "layer1", "layer1-init", "layer2", "layer2-init"):
        assert ("store_lower", os.path.join(home, layer, "lower")) in findings(report)
    problem = next(p for p in report["problems"] if p["check"] == "store_link_file")
    assert problem["found"] == "l/%s is missing" % short_name("base1")


def test_an_edited_lower_file_is_named(store):
    data_root, home = store
    with open(os.path.join(home, "layer1", "lower"), "w") as handle:
        handle.write("l/%s:l/NOSUCHLINK" % short_name("layer1-init"))
    report = check_layer_store(data_root)
    assert findings(report) == [("store_lower", os.path.join(home, "layer1", "lower"))]
    assert report["problems"][0]["found"] == "l/NOSUCHLINK, which does not exist"


def test_a_removed_layer_directory_is_named_by_its_link_and_its_cache_id(store, tmp_path):
    data_root, home = store
    os.rename(os.path.join(home, "base2"), str(tmp_path / "base2-elsewhere"))
    report = check_layer_store(data_root)
    checks = {check for check, _path in findings(report)}
    assert ("store_link", os.path.join(home, "l", short_name("base2"))) in findings(report)
    assert "store_cache_id" in checks
    cache = next(p for p in report["problems"] if p["check"] == "store_cache_id")
    assert cache["found"] == "base2, which does not exist"
    # Every layer above it names it in its lower file.
    lower = next(
        p for p in report["problems"] if p["path"] == os.path.join(home, "layer1", "lower")
    )
    assert lower["found"] == "l/%s, a link to the missing layer base2" % short_name("base2")


def test_a_link_that_points_elsewhere_is_named(store):
    data_root, home = store
    link = os.path.join(home, "l", short_name("layer2"))
    os.unlink(link)
    os.symlink("/tmp/somewhere", link)
    report = check_layer_store(data_root)
    assert ("store_link", link) in findings(report)
    found = next(p["found"] for p in report["problems"] if p["path"] == link)
    assert found == "a link to /tmp/somewhere"


def test_a_missing_mount_id_layer_and_an_unknown_container_are_named(store):
    data_root, home = store
    mounts = os.path.join(data_root, "image", "overlay2", "layerdb", "mounts")
    with open(os.path.join(mounts, "c2", "mount-id"), "w") as handle:
        handle.write("gone")
    report = check_layer_store(data_root, known_containers={"c1"})
    by_check = {p["check"]: p for p in report["problems"]}
    assert by_check["store_mount_id"]["container"] == "c2"
    assert by_check["store_mount_id"]["found"] == "gone, which does not exist"
    assert by_check["store_mount_entry"]["path"] == os.path.join(mounts, "c2")


def test_orphaned_layer_directories_are_listed_with_their_size(store):
    data_root, home = store
    orphan = os.path.join(home, ORPHAN)
    os.makedirs(os.path.join(orphan, "diff"))
    with open(os.path.join(orphan, "diff", "blob"), "wb") as handle:
        handle.write(b"x" * 100000)
    with open(os.path.join(orphan, "link"), "w") as handle:
        handle.write(short_name(ORPHAN))
    os.symlink("../%s/diff" % ORPHAN, os.path.join(home, "l", short_name(ORPHAN)))
    report = check_layer_store(data_root)
    assert report["problems"] == []
    assert [o["id"] for o in report["orphaned_layers"]] == [ORPHAN]
    size = report["orphaned_layers"][0]["size_bytes"]
    assert size == disk_usage(orphan)
    assert size >= 100000
    assert report["orphaned_bytes"] == size


def test_disk_usage_counts_hard_links_once(tmp_path):
    (tmp_path / "a").write_bytes(b"y" * 50000)
    single = disk_usage(str(tmp_path))
    os.link(str(tmp_path / "a"), str(tmp_path / "b"))
    assert disk_usage(str(tmp_path)) == single


def test_a_data_root_without_overlay2_is_not_checked(tmp_path):
    report = check_layer_store(str(tmp_path))
    assert report["checked"] is False
    assert "has no overlay2 store" in report["reason"]


def test_a_device_node_in_the_home_is_not_a_layer(store):
    data_root, home = store
    # What overlay2 leaves on xfs with project quota; a plain file stands in for the device.
    with open(os.path.join(home, "backingFsBlockDev"), "w"):
        pass
    report = check_layer_store(data_root)
    assert report["orphaned_layers"] == []
    assert report["layers"] == 6


def test_a_short_link_that_points_at_another_layer_is_named_by_the_layer_it_should_name(store):
    data_root, home = store
    link = os.path.join(home, "l", short_name("layer2"))
    os.unlink(link)
    os.symlink("../layer1/diff", link)
    report = check_layer_store(data_root)
    link_file = os.path.join(home, "layer2", "link")
    assert findings(report) == [("store_link_file", link_file)]
    assert report["problems"][0]["expected"] == "l/%s linking to ../layer2/diff" % short_name(
        "layer2"
    )
    assert report["problems"][0]["found"] == "l/%s links to layer layer1" % short_name("layer2")


def test_a_layer_without_its_diff_directory_is_named_and_its_link_dangles(store):
    data_root, home = store
    os.rmdir(os.path.join(home, "layer2", "diff"))
    report = check_layer_store(data_root)
    link = os.path.join(home, "l", short_name("layer2"))
    assert findings(report) == [
        ("store_link", link),
        ("store_layer", os.path.join(home, "layer2", "diff")),
    ]
    assert report["problems"][0]["found"] == (
        "a dangling link to ../layer2/diff (no layer directory layer2)"
    )
    assert report["problems"][1]["found"] == "nothing"


def test_a_layer_without_its_link_file_is_named(store):
    data_root, home = store
    os.unlink(os.path.join(home, "layer2", "link"))
    report = check_layer_store(data_root)
    assert findings(report) == [("store_link_file", os.path.join(home, "layer2", "link"))]
    assert report["problems"][0]["expected"] == "the layer's short name"
    assert report["problems"][0]["found"] == "nothing"


def test_entries_of_l_that_are_not_links_to_a_layer_are_each_named_once(store):
    data_root, home = store
    not_a_link = os.path.join(home, "l", "0PLAINFILE")
    with open(not_a_link, "w"):
        pass
    no_id = os.path.join(home, "l", "1NOID")
    os.symlink("..//diff", no_id)
    elsewhere = os.path.join(home, "l", short_name("layer2"))
    os.unlink(elsewhere)
    os.symlink("/tmp/somewhere", elsewhere)
    report = check_layer_store(data_root)
    assert [(p["check"], p["path"], p["found"]) for p in report["problems"]] == [
        ("store_link", not_a_link, "not a link"),
        ("store_link", no_id, "a link to ..//diff"),
        ("store_link", elsewhere, "a link to /tmp/somewhere"),
        (
            "store_link_file",
            os.path.join(home, "layer2", "link"),
            "l/%s is missing" % short_name("layer2"),
        ),
    ]
    assert report["links"] == 5


def test_a_store_without_its_l_directory_names_every_link_file(store):
    data_root, home = store
    for name in os.listdir(os.path.join(home, "l")):
        os.unlink(os.path.join(home, "l", name))
    os.rmdir(os.path.join(home, "l"))
    report = check_layer_store(data_root)
    assert report["links"] == 0
    assert {check for check, _path in findings(report)} == {"store_link_file", "store_lower"}
    assert ("store_link_file", os.path.join(home, "base1", "link")) in findings(report)


def test_a_store_not_checked_reports_nothing_found(tmp_path):
    report = check_layer_store(str(tmp_path))
    assert report == {
        "checked": False,
        "reason": "%s does not exist: this data-root has no overlay2 store"
        % os.path.join(str(tmp_path), "overlay2"),
        "path": os.path.join(str(tmp_path), "overlay2"),
        "layers": 0,
        "links": 0,
        "problems": [],
        "orphaned_layers": [],
        "orphaned_bytes": 0,
    }


def test_orphans_are_listed_without_a_size_when_not_measured(store):
    data_root, home = store
    os.makedirs(os.path.join(home, ORPHAN, "diff"))
    report = check_layer_store(data_root, measure_orphans=False)
    assert report["orphaned_layers"] == [
        {"id": ORPHAN, "path": os.path.join(home, ORPHAN), "size_bytes": None}
    ]
    assert report["orphaned_bytes"] == 0


def test_disk_usage_is_the_blocks_of_the_tree_without_what_links_point_at(tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a").write_bytes(b"y" * 50000)
    outside = tmp_path / "outside"
    outside.write_bytes(b"z" * 200000)
    os.symlink(str(outside), str(tree / "link"))
    entries = (tree, tree / "sub", tree / "sub" / "a", tree / "link")
    assert disk_usage(str(tree)) == sum(os.lstat(str(p)).st_blocks * 512 for p in entries)
    assert disk_usage(str(tree / "sub" / "a")) == os.lstat(str(tree / "sub" / "a")).st_blocks * 512
    assert disk_usage(str(tmp_path / "missing")) == 0


def test_buildkit_snapshots_beside_the_layers_are_not_orphans(store):
    """BuildKit keeps its snapshots in the same directory under names of its own (25
    characters); no layerdb entry names them, yet they are build cache, not orphans."""
    data_root, home = store
    snapshot = os.path.join(home, "jycgamsuf8wi5ol8sbir8739r")
    os.makedirs(os.path.join(snapshot, "diff"))
    os.makedirs(os.path.join(home, ORPHAN, "diff"))
    report = check_layer_store(data_root, measure_orphans=False)
    assert [o["id"] for o in report["orphaned_layers"]] == [ORPHAN]
