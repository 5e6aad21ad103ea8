"""mounts_info against a private dockerd running 20 busybox containers on ext4.

The containers are started once for the module. Damage that would break the daemon's own
teardown (links, lower files, layer directories) is done in a copy of the layer store, which the
module checks with ``data_root`` pointing at the copy; an unmounted merged directory is done on a
container of its own, removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest
from ansible_module import run_module
from harness import BUSYBOX, run

CONTAINERS = 20


@pytest.fixture(scope="module")
def engine(busybox_dockerd_module):
    """The daemon with 20 running containers named web00 .. web19."""
    daemon = busybox_dockerd_module
    for index in range(CONTAINERS):
        daemon.docker(
            "run", "-d", "--network", "none", "--name", "web%02d" % index, BUSYBOX.name,
            "sleep", "3600",
        )  # fmt: skip
    yield daemon
    # PID 1 ignores SIGTERM: without this, dockerd's stop waits 10 s for the containers.
    daemon.docker("rm", "-f", *["web%02d" % index for index in range(CONTAINERS)])


def docker_host(daemon):
    return "unix://" + daemon.socket


def short_link_of(layer_dir):
    with open(os.path.join(layer_dir, "link"), encoding="utf-8") as handle:
        return handle.read().strip()


def layer_of(daemon, container, key):
    """The layer directory id behind GraphDriver.Data[key] (the topmost one for LowerDir)."""
    path = daemon.api("GET", "/containers/%s/json" % container)["GraphDriver"]["Data"][key]
    return os.path.basename(os.path.dirname(path.split(":")[0]))


def no_traceback(result):
    """A failure the module chose (fail_json), not a crash."""
    assert "Traceback" not in result.get("msg", "")
    # ansible-core 2.19 puts this placeholder on every fail_json result.
    assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)"
    assert "module_stderr" not in result, result.get("module_stderr")


def test_twenty_running_containers_are_all_ok(engine):
    result = run_module("mounts_info", {"docker_host": docker_host(engine), "check_store": True})
    assert result.get("failed") is not True, result.get("msg")
    assert result["ok"] is True, result["problems"]
    assert result["changed"] is False
    assert result["summary"]["containers"] == CONTAINERS
    assert result["summary"]["running"] == CONTAINERS
    assert result["summary"]["ok"] == CONTAINERS
    assert result["engine"]["driver"] == "overlay2"
    assert result["data_root"] == engine.data_root
    names = sorted(c["name"] for c in result["containers"])
    assert names == ["web%02d" % i for i in range(CONTAINERS)]
    for container in result["containers"]:
        assert container["status"] == "ok"
        assert container["mounted"] is True
        # The busybox image is one layer; under it the container's -init layer.
        assert container["layers"] == 2
        assert container["relative_paths"] is False
    store = result["store"]
    assert store["checked"] is True
    assert store["problems"] == []
    # One image layer, and a layer plus an -init layer per container.
    assert store["layers"] == 1 + 2 * CONTAINERS
    assert store["orphaned_layers"] == []


def test_check_mode_checks_the_chosen_container(engine):
    result = run_module(
        "mounts_info", {"docker_host": docker_host(engine), "containers": ["web03"]}, check=True
    )
    assert result["ok"] is True
    assert [c["name"] for c in result["containers"]] == ["web03"]
    assert result["store"]["checked"] is False


@pytest.fixture
def damaged_copy(engine, tmp_path):
    """A copy of the daemon's layer store and layerdb; the daemon keeps running on its own."""
    copy = str(tmp_path / "docker-copy")
    os.makedirs(copy)
    for part in ("overlay2", "image"):
        # --one-file-system: the merged directories of running containers are mounts.
        run(["cp", "-a", "--one-file-system", os.path.join(engine.data_root, part), copy])
    yield copy
    shutil.rmtree(copy)


def test_damage_in_a_copy_of_the_store_is_each_named(engine, damaged_copy):
    home = os.path.join(damaged_copy, "overlay2")
    web05 = layer_of(engine, "web05", "UpperDir")
    web06 = layer_of(engine, "web06", "UpperDir")
    web07_init = layer_of(engine, "web07", "LowerDir")

    # 1. A deleted l/ link (web05's own layer).
    deleted_link = os.path.join(home, "l", short_link_of(os.path.join(home, web05)))
    os.unlink(deleted_link)
    # 2. An edited lower file (web06's chain now names a link that does not exist).
    lower_file = os.path.join(home, web06, "lower")
    with open(lower_file, "w", encoding="utf-8") as handle:
        handle.write("l/AAAAAAAAAAAAAAAAAAAAAAAAAA")
    # 3. A layer directory removed (web07's -init layer).
    shutil.rmtree(os.path.join(home, web07_init))

    result = run_module(
        "mounts_info",
        {"docker_host": docker_host(engine), "data_root": damaged_copy, "check_store": True},
    )
    assert result["ok"] is False
    # The running containers themselves are still fine: the live store is untouched.
    assert result["summary"]["with_problems"] == 0
    found = {(p["check"], p["path"]): p for p in result["store"]["problems"]}

    link_file = found[("store_link_file", os.path.join(home, web05, "link"))]
    assert link_file["found"] == "l/%s is missing" % os.path.basename(deleted_link)

    lower = found[("store_lower", lower_file)]
    assert lower["found"] == "l/AAAAAAAAAAAAAAAAAAAAAAAAAA, which does not exist"

    init_link = os.path.join(
        home, "l", short_link_of(os.path.join(engine.data_root, "overlay2", web07_init))
    )
    assert ("store_link", init_link) in found
    mounts = os.path.join(damaged_copy, "image", "overlay2", "layerdb", "mounts")
    web07_id = engine.api("GET", "/containers/web07/json")["Id"]
    init_id = found[("store_mount_id", os.path.join(mounts, web07_id, "init-id"))]
    assert init_id["found"] == "%s, which does not exist" % web07_init
    # The web07 layer's lower file chains through the removed -init layer's link.
    web07_lower = found[("store_lower", os.path.join(home, web07_init[: -len("-init")], "lower"))]
    assert web07_lower["found"].endswith("a link to the missing layer %s" % web07_init)
    # Nothing else: the report names exactly the damage done.
    assert len(result["store"]["problems"]) == len(found)


def test_a_deleted_link_under_a_running_container_is_named(engine, tmp_path):
    """Damage to the live store: the mount still works, but the container would not start again.
    The link is put back before the test ends."""
    data = engine.api("GET", "/containers/web10/json")["GraphDriver"]["Data"]
    init_layer = os.path.dirname(data["LowerDir"].split(":")[0])
    link = os.path.join(engine.data_root, "overlay2", "l", short_link_of(init_layer))
    target = os.readlink(link)
    os.unlink(link)
    try:
        result = run_module(
            "mounts_info", {"docker_host": docker_host(engine), "containers": ["web10"]}
        )
    finally:
        os.symlink(target, link)
    assert "ok" in result, result["msg"]
    assert result["ok"] is False
    [container] = result["containers"]
    assert container["status"] == "problems"
    # dockerd itself cannot describe the container any more: it readlinks every lower link.
    [found] = container["problems"]
    assert found["check"] == "engine_inspect"
    assert found["container"] == "web10"
    assert found["path"] == link
    assert "no such file or directory" in found["found"]


def test_a_merged_directory_unmounted_by_hand_is_named(engine):
    engine.docker(
        "run", "-d", "--network", "none", "--name", "unmounted", BUSYBOX.name, "sleep", "3600"
    )  # fmt: skip
    try:
        merged = engine.api("GET", "/containers/unmounted/json")["GraphDriver"]["Data"]["MergedDir"]
        run(["umount", merged])
        result = run_module(
            "mounts_info", {"docker_host": docker_host(engine), "fail_on_problems": True}
        )
    finally:
        engine.docker("rm", "-f", "unmounted")
    assert result["failed"] is True
    no_traceback(result)
    assert "unmounted: %s: expected an overlay mount, found no mount" % merged in result["msg"]
    assert result["summary"]["with_problems"] == 1
    assert result["summary"]["ok"] == CONTAINERS
    [broken] = [c for c in result["containers"] if c["status"] != "ok"]
    assert broken["name"] == "unmounted"
    assert broken["mounted"] is False
    assert [(p["check"], p["path"]) for p in broken["problems"]] == [("merged_mount", merged)]


def long_data_root(base, length=900):
    """A data-root path of about ``length`` bytes: long enough that a container with three lower
    layers does not fit in one page of mount data, short enough for dockerd's own overlay check
    (four paths) to pass."""
    parts = [base]
    while len(os.path.join(*parts)) < length - 210:
        parts.append("long-" + "x" * 195)
    parts.append("d" * max(1, length - len(os.path.join(*parts)) - 8))
    parts.append("docker")
    return os.path.join(*parts)


def test_relative_lowerdirs_of_a_long_data_root_are_resolved(
    tmp_path, start_dockerd, busybox_image, import_test_image
):
    data_root = long_data_root(str(tmp_path))
    os.makedirs(data_root)
    daemon = start_dockerd(data_root, storage_driver="overlay2")
    daemon.assert_started()
    import_test_image(daemon, busybox_image)
    # A second image layer: with the -init layer, three lowers.
    daemon.docker("run", "--network", "none", "--name", "base", BUSYBOX.name, "touch", "/layer2")
    daemon.docker("commit", "base", "two-layers:latest")
    daemon.docker(
        "run", "-d", "--network", "none", "--name", "long", "two-layers:latest", "sleep", "3600"
    )  # fmt: skip
    result = run_module(
        "mounts_info",
        {"docker_host": docker_host(daemon), "containers": ["long"], "check_store": True},
    )
    assert result.get("failed") is not True, result.get("msg")
    [container] = result["containers"]
    # dockerd mounted with l/... and <id>/diff relative to the overlay2 home.
    assert container["relative_paths"] is True
    assert container["layers"] == 3
    assert container["status"] == "ok", container["problems"]
    assert result["ok"] is True
    daemon.docker("rm", "-f", "long")  # a quick teardown (see engine)


def test_the_probe_proves_write_and_whiteout_and_leaves_nothing(engine):
    before = engine.api("GET", "/containers/json?all=1")
    result = run_module(
        "mounts_info",
        {
            "docker_host": docker_host(engine),
            "containers": ["web00"],
            "probe": True,
            "probe_image": BUSYBOX.name,
        },
    )
    assert result.get("failed") is not True, result.get("msg")
    probe = result["probe"]
    assert probe["attempted"] is True
    assert probe["ok"] is True, probe["problems"]
    assert probe["merged_mounted"] and probe["write_in_upperdir"] and probe["whiteout_in_upperdir"]
    assert probe["victim"].startswith("/etc/")
    assert probe["removed"] is True
    assert result["ok"] is True
    after = engine.api("GET", "/containers/json?all=1")
    assert sorted(c["Id"] for c in after) == sorted(c["Id"] for c in before)
    # Its layer directories went with it.
    assert not os.path.exists(os.path.dirname(probe["merged_dir"]))


def test_check_mode_skips_the_probe(engine):
    result = run_module(
        "mounts_info",
        {
            "docker_host": docker_host(engine),
            "containers": ["web00"],
            "probe": True,
            "probe_image": "dockerhost-test/absent:latest",
        },
        check=True,
    )
    assert result["probe"]["attempted"] is False
    assert "check mode" in result["probe"]["skipped_reason"]


def test_a_probe_image_that_is_not_present_is_a_clear_error(engine):
    result = run_module(
        "mounts_info",
        {
            "docker_host": docker_host(engine),
            "containers": ["web00"],
            "probe": True,
            "probe_image": "dockerhost-test/absent:latest",
        },
    )
    assert result["failed"] is True
    no_traceback(result)
    assert "probe_image dockerhost-test/absent:latest is not present" in result["msg"]
    assert "never pulled" in result["msg"]
    names = [c["Names"][0] for c in engine.api("GET", "/containers/json?all=1")]
    assert not [n for n in names if "probe" in n]


def test_an_unknown_container_name_is_a_clear_error(engine):
    result = run_module(
        "mounts_info", {"docker_host": docker_host(engine), "containers": ["web00", "nope"]}
    )
    assert result["failed"] is True
    no_traceback(result)
    assert result["msg"].startswith("containers: the engine has no container named 'nope'")


def test_a_socket_that_does_not_exist_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "docker.sock")
    result = run_module("mounts_info", {"docker_host": "unix://" + missing})
    assert result["failed"] is True
    no_traceback(result)
    assert result["msg"].startswith("mounts_info needs the Engine API: no Docker engine socket")
    assert missing in result["msg"]


def test_an_engine_that_never_answers_is_a_clear_error(tmp_path):
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)  # connections queue up and are never answered
    try:
        result = run_module("mounts_info", {"docker_host": "unix://" + path, "timeout": 2})
    finally:
        server.close()
    assert result["failed"] is True
    no_traceback(result)
    assert result["msg"].startswith("mounts_info needs the Engine API:")
    assert path in result["msg"]
    assert "did not answer GET /version within 2 s (is dockerd hung?)" in result["msg"]


def test_the_host_mount_table_is_untouched(engine):
    """After the probes and the damage above, the daemon's containers still run on overlay."""
    listing = engine.api("GET", "/containers/json")
    assert len(listing) == CONTAINERS
    completed = subprocess.run(
        ["findmnt", "-rn", "-t", "overlay", "-o", "TARGET"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, LANG="C", LC_ALL="C"),
    )
    mine = [line for line in completed.stdout.splitlines() if line.startswith(engine.data_root)]
    assert len(mine) == CONTAINERS


def test_bind_mounts_that_expose_the_host_are_found_and_audited(engine, tmp_path):
    """CIS 5.6, 5.20 and 5.32 from a real container: /etc read-only, the engine's own socket
    (not at a default path), and a bind with rshared propagation from a shared mount."""
    shared = tmp_path / "shared"
    shared.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=1m", "dockerhost-shared", str(shared)])
    try:
        run(["mount", "--make-shared", str(shared)])
        engine.docker(
            "run", "-d", "--network", "none", "--name", "exposer",
            "-v", "/etc:/host-etc:ro",
            "-v", "%s:/var/run/docker.sock" % engine.socket,
            "--mount", "type=bind,source=%s,target=/shared,bind-propagation=rshared" % shared,
            BUSYBOX.name, "sleep", "3600",
        )  # fmt: skip
        try:
            listed = run_module(
                "mounts_info", {"docker_host": docker_host(engine), "containers": ["exposer"]}
            )
            audited = run_module(
                "storage_facts",
                {
                    "docker_host": docker_host(engine),
                    "config_path": engine.config_file,
                    "host_root": str(tmp_path),
                    "probe": False,
                },
                check=True,
            )
        finally:
            engine.docker("rm", "-f", "exposer")
    finally:
        run(["umount", "-l", str(shared)])
    assert listed.get("failed") is not True, listed.get("msg")
    [container] = listed["containers"]
    assert sorted((m["check"], m["source"]) for m in container["host_mounts"]) == [
        ("sensitive_host_mount", "/etc"),
        ("shared_mount_propagation", str(shared)),
        ("socket_mounted", engine.socket),
    ]
    assert audited.get("failed") is not True, audited.get("msg")
    checks = {c["check"]: c for c in audited["ansible_facts"]["docker_storage"]["checks"]}
    seen = {
        name: (checks[name]["cis"], checks[name]["status"], checks[name]["message"])
        for name in ("sensitive_host_mount", "shared_mount_propagation", "socket_mounted")
    }
    assert seen == {
        "sensitive_host_mount": ("5.6", "fail", "exposer mounts /etc at /host-etc (read-only)"),
        "shared_mount_propagation": (
            "5.20",
            "warn",
            "exposer mounts %s at /shared (read-write, propagation rshared)" % shared,
        ),
        "socket_mounted": (
            "5.32",
            "fail",
            "exposer mounts %s at /var/run/docker.sock (read-write)" % engine.socket,
        ),
    }


def test_an_image_near_the_layer_limit_is_named_by_the_audit(engine, tmp_path):
    """The layer depth check on a real image: busybox plus two committed layers is three; with
    warn_layer_depth 3 it is named, with its tag and count as the engine reports them."""
    engine.docker("run", "--network", "none", "--name", "deep1", BUSYBOX.name, "touch", "/one")
    try:
        engine.docker("commit", "deep1", "deep:1")
        engine.docker("run", "--network", "none", "--name", "deep2", "deep:1", "touch", "/two")
        engine.docker("commit", "deep2", "deep:2")
        audited = run_module(
            "storage_facts",
            {
                "docker_host": docker_host(engine),
                "config_path": engine.config_file,
                "host_root": str(tmp_path),
                "probe": False,
                "policy": {"warn_layer_depth": 3},
            },
            check=True,
        )
    finally:
        engine.docker("rm", "-f", "deep1", "deep2")
        engine.docker("rmi", "deep:2", "deep:1")
    assert audited.get("failed") is not True, audited.get("msg")
    facts = audited["ansible_facts"]["docker_storage"]
    assert [(i["image"], i["layers"]) for i in facts["mounts"]["deepest_images"]] == [
        ("deep:2", 3),
        ("deep:1", 2),
        (BUSYBOX.name, 1),
    ]
    [check] = [c for c in facts["checks"] if c["check"] == "layer_depth"]
    assert (check["status"], check["message"]) == (
        "warn",
        "image deep:2 has 3 layers (122 more before dockerd's limit of 125); squash it, or "
        "build it in fewer steps",
    )
