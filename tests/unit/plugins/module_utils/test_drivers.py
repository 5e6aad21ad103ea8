import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _drivers, _support

HOSTS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "hosts")

NO_DM = {"available": False, "detail": "CONFIG_BLK_DEV_DM is not set in the kernel config"}
PROBE_OK = {
    "overlay_ok": True,
    "overlay_error": None,
    "d_type": True,
    "d_type_error": None,
    "write_error": None,
}


def evidence(host="debian-12-overlay-module", backing="ext4", prior=(), probe="ok", **extra):
    """Kernel evidence from a recorded host tree plus the facts of a backing filesystem."""
    if probe == "ok":
        probe = dict(PROBE_OK)
    result = _support.kernel_evidence(os.path.join(HOSTS, host))
    result.update(
        backing_fs=backing,
        mount_point="/var/lib/docker",
        read_only=False,
        project_quota=False,
        probe=probe,
        d_type=(probe or {}).get("d_type"),
        d_type_error=None,
        write_error=None,
        data_root="/var/lib/docker",
        prior_drivers=list(prior),
    )
    result.update(extra)
    return result


def report(engine, ev, snapshotter=None):
    return _support.build_report(_drivers.parse_engine_version(engine), "option", ev, snapshotter)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("20.10.24+dfsg1", (20, 10, 24)),
        ("17.03.2-ce", (17, 3, 2)),
        ("1.13.1", (1, 13, 1)),
        ("27.5", (27, 5, 0)),
        ("v29.0.1", (29, 0, 1)),
    ],
)
def test_parse_engine_version(text, expected):
    assert _drivers.parse_engine_version(text) == expected


@pytest.mark.parametrize("text", ["", "latest", "twenty"])
def test_parse_engine_version_rejects_words(text):
    with pytest.raises(ValueError, match="not a version"):
        _drivers.parse_engine_version(text)


@pytest.mark.parametrize(
    "engine, first, absent",
    [
        ("19.03", "btrfs", ["fuse-overlayfs"]),
        ("20.10", "btrfs", []),
        ("23.0", "overlay2", []),
        ("24.0", "overlay2", ["aufs", "overlay"]),
        ("25.0", "overlay2", ["aufs", "overlay", "devicemapper"]),
        ("29.1", "overlay2", ["aufs", "overlay", "devicemapper"]),
    ],
)
def test_priority_list_by_engine(engine, first, absent):
    order = _drivers.priority_list(_drivers.parse_engine_version(engine))
    assert order[0] == first and order[-1] == "vfs"
    assert not set(absent) & set(order)


def test_healthy_ext4_host_on_engine_20_10_picks_overlay2():
    result = report("20.10.24", evidence())
    assert result["drivers"]["overlay2"]["supported"] is True
    assert result["would_pick"]["driver"] == "overlay2"
    assert result["recommended"] == "overlay2"
    assert result["drivers"]["aufs"]["supported"] is False
    assert result["drivers"]["btrfs"]["reasons"] == [
        "btrfs needs the data-root on a btrfs filesystem (it is on ext4)"
    ]


def test_btrfs_backing_changes_the_pick_between_20_10_and_23():
    ev = evidence(backing="btrfs")
    assert report("20.10", ev)["would_pick"]["driver"] == "btrfs"
    assert report("23.0", ev)["would_pick"]["driver"] == "overlay2"
    assert report("23.0", ev)["recommended"] == "overlay2"


def test_xfs_without_ftype_refuses_overlay2_and_falls_back_to_vfs():
    probe = dict(PROBE_OK, d_type=False)
    result = report("20.10", evidence(backing="xfs", probe=probe))
    reasons = result["drivers"]["overlay2"]["reasons"]
    assert result["drivers"]["overlay2"]["supported"] is False
    assert any("does not support d_type" in r and "ftype=1" in r for r in reasons)
    # fuse-overlayfs is installed on that recorded host, so it comes before vfs
    assert result["would_pick"]["driver"] == "fuse-overlayfs"
    no_fuse = evidence(
        backing="xfs", probe=probe, fuse={"available": False, "binary": None}, devicemapper=NO_DM
    )
    assert report("20.10", no_fuse)["would_pick"]["driver"] == "vfs"


def test_overlay_on_overlay_is_refused_with_the_mount_error():
    probe = dict(
        PROBE_OK,
        overlay_ok=False,
        overlay_error="overlay mount with two lower directories failed: Invalid argument (EINVAL)",
    )
    ev = evidence(
        backing="overlay", probe=probe, fuse={"available": True, "binary": None}, devicemapper=NO_DM
    )
    result = report("20.10", ev)
    assert result["drivers"]["overlay2"]["supported"] is False
    assert "Invalid argument" in result["drivers"]["overlay2"]["reasons"][0]
    assert result["drivers"]["overlay"]["supported"] is False
    assert result["would_pick"]["driver"] == "vfs"
    assert result["recommended"] == "vfs"
    # with device-mapper in the kernel, 20.10 would take devicemapper (loop-lvm) before vfs
    assert (
        report("20.10", dict(ev, devicemapper={"available": True}))["would_pick"]["driver"]
        == "devicemapper"
    )


def test_overlay_disabled_by_hardening_is_reported_with_file_and_line():
    result = report("24.0", evidence(host="hardened-overlay-disabled", backing="xfs", probe=None))
    overlay2 = result["drivers"]["overlay2"]
    assert overlay2["supported"] is False
    assert any("/etc/modprobe.d/CIS.conf:7" in reason for reason in overlay2["reasons"])
    assert any("blacklisted in /etc/modprobe.d/CIS.conf:8" in w for w in overlay2["warnings"])


def test_blacklisted_but_loaded_overlay_still_works_with_a_warning():
    result = report("27.0", evidence())
    overlay2 = result["drivers"]["overlay2"]
    assert overlay2["supported"] is True
    assert any("blacklisted in /etc/modprobe.d/hardening.conf:1" in w for w in overlay2["warnings"])


def test_native_overlay_diff_warning_from_redirect_dir():
    overlay2 = report("20.10", evidence())["drivers"]["overlay2"]
    assert any("redirect_dir is enabled" in w for w in overlay2["warnings"])
    ubuntu = report("19.03", evidence(host="ubuntu-18.04-aufs"))["drivers"]["overlay2"]
    assert not any("Native Overlay Diff" in w for w in ubuntu["warnings"])


def test_aufs_host_on_old_and_new_engines():
    ev = evidence(host="ubuntu-18.04-aufs", prior=["aufs"])
    old = report("19.03.15", ev)
    assert old["drivers"]["aufs"]["supported"] is True
    assert old["would_pick"]["driver"] == "aufs"
    v23 = report("23.0", ev)
    assert v23["drivers"]["aufs"]["deprecated"] is True
    assert v23["would_pick"]["driver"] is None
    assert "deprecated aufs" in v23["would_pick"]["reason"]
    v24 = report("24.0", ev)
    assert v24["drivers"]["aufs"]["supported"] is False
    assert v24["drivers"]["aufs"]["removed"] is True
    assert "removed in Docker Engine 24.0" in v24["drivers"]["aufs"]["reasons"][0]
    assert any("aufs" in w for w in v24["would_pick"]["warnings"])


def test_aufs_refused_on_btrfs():
    result = report("19.03", evidence(host="ubuntu-18.04-aufs", backing="btrfs"))
    assert "aufs cannot run on a btrfs backing filesystem" in result["drivers"]["aufs"]["reasons"]


def test_old_engine_needs_kernel_4_for_overlay2():
    ev = evidence(
        host="ubuntu-18.04-aufs", kernel_version=(3, 10, 0), kernel_release="3.10.0-1160.el7.x86_64"
    )
    result = report("18.09", ev)
    assert any("needs kernel 4.0" in r for r in result["drivers"]["overlay2"]["reasons"])
    assert result["drivers"]["overlay"]["supported"] is True


def test_old_engine_refuses_overlay2_on_zfs_by_type():
    result = report("19.03", evidence(backing="zfs", probe=None))
    assert any(
        "refuses overlay2 on a zfs backing filesystem" in r
        for r in result["drivers"]["overlay2"]["reasons"]
    )


def test_two_prior_drivers_make_dockerd_refuse():
    result = report("20.10", evidence(prior=["overlay2", "btrfs"], backing="btrfs"))
    assert result["would_pick"]["driver"] is None
    assert "several drivers" in result["would_pick"]["reason"]


def test_prior_driver_that_no_longer_works_refuses():
    result = report("20.10", evidence(prior=["btrfs"]))
    assert result["would_pick"]["driver"] is None
    assert "btrfs cannot run here" in result["would_pick"]["reason"]


def test_engine_29_fresh_data_root_uses_containerd_store():
    result = report("29.0.1", evidence())
    assert result["would_pick"] == {
        "driver": "overlayfs",
        "image_store": "containerd",
        "reason": "Docker Engine 29.0 uses the containerd image store on a fresh data-root (snapshotter overlayfs)",
        "warnings": [],
    }


def test_containerd_store_takes_overlayfs_even_where_overlay_cannot_mount():
    # dockerd 28.5 on a data-root inside an overlay mount, the snapshotter feature on: it picks
    # overlayfs, starts, and fails every container's mount (seen on a real engine; see
    # tests/integration/test_driver_support_info.py).
    probe = dict(PROBE_OK, overlay_ok=False, overlay_error="overlay mount failed: invalid argument")
    result = report("28.5", evidence(backing="overlay", probe=probe), True)
    pick = result["would_pick"]
    assert pick["driver"] == "overlayfs" and pick["image_store"] == "containerd"
    assert len(pick["warnings"]) == 1
    assert "every container will fail to start" in pick["warnings"][0]
    assert "set storage-driver to native" in pick["warnings"][0]
    assert report("28.5", evidence(), True)["would_pick"]["warnings"] == []


def test_engine_29_with_prior_overlay2_keeps_the_graphdriver():
    result = report("29.0", evidence(prior=["overlay2"]))
    assert result["would_pick"]["driver"] == "overlay2"
    assert result["would_pick"]["image_store"] == "graphdriver"


@pytest.mark.parametrize(
    "engine, setting, store",
    [("29.0", False, "graphdriver"), ("27.3", True, "containerd"), ("27.3", None, "graphdriver")],
)
def test_containerd_snapshotter_feature_decides_the_store(engine, setting, store):
    assert report(engine, evidence(), setting)["would_pick"]["image_store"] == store


def test_removed_and_deprecated_drivers_by_version():
    ev = evidence(host="ubuntu-18.04-aufs")
    assert report("23.0", ev)["drivers"]["devicemapper"]["deprecated"] is True
    assert report("23.0", ev)["drivers"]["devicemapper"]["supported"] is True
    v25 = report("25.0", ev)["drivers"]["devicemapper"]
    assert v25["supported"] is False and v25["removed"] is True
    assert report("24.0", ev)["drivers"]["overlay"]["removed"] is True


def test_deprecated_driver_is_skipped_in_automatic_choice():
    # Only aufs and devicemapper would work: 20.10 picks aufs, 23.0 skips both and takes vfs.
    probe = dict(PROBE_OK, overlay_ok=False, overlay_error="overlay mount failed")
    ev = evidence(host="ubuntu-18.04-aufs", probe=probe)
    assert report("20.10", ev)["would_pick"]["driver"] == "aufs"
    assert report("23.0", ev)["would_pick"]["driver"] == "vfs"


def test_fuse_overlayfs_is_not_built_in_before_20_10():
    result = report("19.03", evidence())
    assert any(
        "not a built-in driver before Docker Engine 20.10" in r
        for r in result["drivers"]["fuse-overlayfs"]["reasons"]
    )
    assert report("20.10", evidence())["drivers"]["fuse-overlayfs"]["supported"] is True


def test_unknown_kernel_config_makes_devicemapper_unknown():
    result = report("20.10", evidence(host="no-kernel-config"))
    assert result["drivers"]["devicemapper"]["supported"] is None
    assert "kernel config not found" in result["drivers"]["devicemapper"]["reasons"][0]
    assert result["drivers"]["overlay2"]["supported"] is True


def test_read_only_filesystem_refuses_everything():
    result = report("27.0", evidence(read_only=True, probe=None))
    assert all(v["supported"] is False for v in result["drivers"].values())
    assert result["would_pick"]["driver"] is None


def test_no_probe_relies_on_type_and_says_so():
    result = report("27.0", evidence(probe=None, d_type=True))
    overlay2 = result["drivers"]["overlay2"]
    assert overlay2["supported"] is True
    assert any("not confirmed by a test mount" in w for w in overlay2["warnings"])
    unusual = report("27.0", evidence(backing="jfs", probe=None, d_type=True))["drivers"][
        "overlay2"
    ]
    assert unusual["supported"] is None
    assert "run with probe enabled" in unusual["reasons"][0]


def test_unknown_first_choice_makes_would_pick_unknown():
    result = report(
        "27.0",
        evidence(probe=None, d_type=None, d_type_error="/srv is empty and probe is disabled"),
    )
    assert result["drivers"]["overlay2"]["supported"] is None
    assert result["would_pick"]["driver"] is None
    assert result["would_pick"]["reason"].startswith("cannot tell")


def test_no_engine_verdicts_say_which_engine_they_assume():
    ev = evidence()
    result = _support.build_report(_drivers.CURRENT_ENGINE, "none", ev)
    assert any("judged for Docker Engine 29.0" in w for w in result["drivers"]["vfs"]["warnings"])


def test_xfs_project_quota_enables_overlay2_size():
    with_quota = report("27.0", evidence(backing="xfs", project_quota=True))["drivers"]["overlay2"][
        "warnings"
    ]
    without = report("27.0", evidence(backing="xfs"))["drivers"]["overlay2"]["warnings"]
    assert not any("overlay2.size" in w for w in with_quota)
    assert any("overlay2.size is unavailable" in w for w in without)


def test_aufs_without_kernel_evidence_is_unknown_with_the_reason():
    verdict = report("20.10", evidence(host="no-kernel-config"))["drivers"]["aufs"]
    assert verdict["supported"] is None
    assert "cannot tell whether the kernel offers aufs" in verdict["reasons"][0]


def test_an_existing_store_without_d_type_runs_before_23_and_is_refused_from_23():
    # dockerd refuses d_type off for a new store only (moby #27443), until 23.0.
    probe = dict(PROBE_OK, d_type=False)
    existing = evidence(backing="ext4", probe=probe)
    existing["prior_drivers"] = ["overlay2"]
    kept = report("20.10", existing)["drivers"]["overlay2"]
    assert kept["supported"] is True
    assert any("keeps running the existing overlay2 store" in w for w in kept["warnings"])
    assert report("20.10", existing)["would_pick"]["driver"] == "overlay2"
    for version in ("23.0", "28.5"):
        refused = report(version, existing)["drivers"]["overlay2"]
        assert refused["supported"] is False, version
    fresh = report("20.10", evidence(backing="ext4", probe=probe))["drivers"]["overlay2"]
    assert fresh["supported"] is False


@pytest.mark.parametrize(
    "kernel, refused", [((3, 19, 0), True), ((4, 0, 0), False), ((4, 0, 1), False)]
)
def test_old_engines_take_overlay2_from_kernel_4_0_on(kernel, refused):
    release = "%d.%d.%d-generic" % kernel
    ev = evidence(host="ubuntu-18.04-aufs", kernel_version=kernel, kernel_release=release)
    overlay2 = report("18.09", ev)["drivers"]["overlay2"]
    needs = [r for r in overlay2["reasons"] if "needs kernel 4.0" in r]
    if refused:
        assert overlay2["supported"] is False
        assert needs == [
            "Docker Engine 18.9 needs kernel 4.0 or newer for overlay2 (found %s)" % release
        ]
    else:
        assert overlay2["supported"] is True
        assert needs == []


def native_diff(params=None, config=None, kernel=(6, 1, 0)):
    return _drivers.native_diff_notes(
        {"overlay_parameters": params, "kernel_config": config, "kernel_version": kernel}
    )


@pytest.mark.parametrize(
    "kernel, slow", [((4, 7, 10), True), ((4, 8, 0), False), ((5, 4, 0), False), (None, False)]
)
def test_native_overlay_diff_is_off_on_kernels_before_4_8(kernel, slow):
    notes = native_diff({}, {}, kernel)
    expected = ["Native Overlay Diff is off: kernels before 4.8 copy opaque flags up"]
    assert notes == (expected if slow else [])
    # The same rule as driver_support_info reports it for overlay2.
    ev = evidence(host="ubuntu-18.04-aufs", kernel_version=kernel)
    warnings = report("20.10", ev)["drivers"]["overlay2"]["warnings"]
    assert (expected[0] in warnings) is slow


@pytest.mark.parametrize(
    "params, config, off",
    [
        ({"metacopy": "Y"}, {}, True),
        ({"metacopy": "N"}, {"CONFIG_OVERLAY_FS_METACOPY": "y"}, False),
        ({}, {"CONFIG_OVERLAY_FS_METACOPY": "y"}, True),
        ({}, {"CONFIG_OVERLAY_FS_METACOPY": "n"}, False),
        (None, None, False),
    ],
)
def test_native_overlay_diff_is_off_with_metacopy_from_the_parameter_else_the_config(
    params, config, off
):
    metacopy = (
        "Native Overlay Diff is off: overlay metacopy is enabled (image builds and commits are "
        "slower)"
    )
    assert native_diff(params, config) == ([metacopy] if off else [])


@pytest.mark.parametrize(
    "params, config, off",
    [
        ({"redirect_dir": "Y"}, {}, True),
        ({"redirect_dir": "on"}, {}, True),
        ({"redirect_dir": "follow"}, {}, True),
        ({"redirect_dir": "nofollow"}, {}, True),
        ({"redirect_dir": "off"}, {"CONFIG_OVERLAY_FS_REDIRECT_DIR": "y"}, False),
        ({"redirect_dir": "N"}, {}, False),
        ({}, {"CONFIG_OVERLAY_FS_REDIRECT_DIR": "y"}, True),
        ({}, {"CONFIG_OVERLAY_FS_REDIRECT_DIR": "n"}, False),
    ],
)
def test_native_overlay_diff_is_off_with_redirect_dir_from_the_parameter_else_the_config(
    params, config, off
):
    redirect = (
        "Native Overlay Diff is off: overlay redirect_dir is enabled (image builds and commits "
        "are slower)"
    )
    assert native_diff(params, config) == ([redirect] if off else [])


def test_unknown_d_type_makes_overlay_unknown_and_says_why():
    ev = evidence(probe=None, d_type=None, d_type_error="/srv is empty and probe is disabled")
    overlay2 = report("27.0", ev)["drivers"]["overlay2"]
    assert overlay2["supported"] is None
    assert overlay2["reasons"] == [
        "d_type support of the backing filesystem is unknown: /srv is empty and probe is disabled"
    ]
    unprobed = report("27.0", evidence(probe=None, d_type=None))["drivers"]["overlay"]
    assert unprobed["reasons"][-1] == (
        "d_type support of the backing filesystem is unknown: not probed"
    )


def test_a_filesystem_that_refuses_writes_refuses_every_driver_with_the_error():
    error = "cannot write to /var/lib/docker: No space left on device"
    result = report("27.0", evidence(write_error=error))
    for name, verdict in result["drivers"].items():
        assert verdict["supported"] is False, name
        assert error in verdict["reasons"], name


def test_a_deprecated_driver_says_so_and_what_to_do():
    verdict = report("23.0", evidence(host="ubuntu-18.04-aufs"))["drivers"]["aufs"]
    assert verdict["warnings"] == [
        "aufs is deprecated since Docker Engine 23.0 and will be removed; migrate to overlay2"
    ]
    assert report("20.10", evidence(host="ubuntu-18.04-aufs"))["drivers"]["aufs"]["warnings"] == []


@pytest.mark.parametrize(
    "backing, extra, recommended",
    [
        ("btrfs", {}, "btrfs"),
        ("zfs", {"zfs_device": True}, "zfs"),
        ("ext4", {}, "fuse-overlayfs"),
    ],
)
def test_where_overlay2_cannot_mount_the_filesystem_s_own_driver_is_recommended(
    backing, extra, recommended
):
    probe = dict(PROBE_OK, overlay_ok=False, overlay_error="overlay mount failed")
    result = report("27.0", evidence(backing=backing, probe=probe, **extra))
    assert result["drivers"]["overlay2"]["supported"] is False
    assert result["recommended"] == recommended


@pytest.mark.parametrize(
    "value, graphdriver",
    [
        ("overlayfs", "overlay2"),
        ("native", "vfs"),
        ("overlay2", "overlay2"),
        ("btrfs", "btrfs"),
        ("stargz", "stargz"),
    ],
)
def test_a_snapshotter_is_judged_as_its_graphdriver(value, graphdriver):
    assert _drivers.graphdriver_for(value) == graphdriver


def test_prior_vfs_state_does_not_decide_the_driver():
    # dockerd's vfs directory holds no state that pins the driver: the priority list decides.
    result = report("20.10", evidence(prior=["vfs"]))
    assert result["would_pick"]["driver"] == "overlay2"
    assert result["would_pick"]["reason"].startswith("first driver in Docker Engine 20.10")


def test_zfs_needs_a_zfs_dataset_and_dev_zfs():
    elsewhere = report("27.0", evidence(zfs_device=False))["drivers"]["zfs"]
    assert elsewhere["supported"] is False
    assert elsewhere["reasons"] == [
        "zfs needs the data-root on a zfs dataset (it is on ext4)",
        "/dev/zfs does not exist (zfs kernel module not loaded)",
    ]
    assert report("27.0", evidence(backing="zfs", zfs_device=True))["drivers"]["zfs"] == {
        "supported": True,
        "reasons": [],
        "warnings": [],
        "deprecated": False,
        "removed": False,
    }


def test_fuse_overlayfs_needs_its_program_and_fuse():
    verdict = report("27.0", evidence(fuse={"available": False, "binary": None}))["drivers"][
        "fuse-overlayfs"
    ]
    assert verdict["supported"] is False
    assert verdict["reasons"] == [
        "the fuse-overlayfs program is not installed",
        "FUSE is not available (no 'fuse' in /proc/filesystems or no /dev/fuse)",
    ]
    fine = evidence(fuse={"available": True, "binary": "/usr/bin/fuse-overlayfs"})
    assert report("27.0", fine)["drivers"]["fuse-overlayfs"]["supported"] is True


@pytest.mark.parametrize(
    "engine, deprecated, removed",
    [
        ("20.10", set(), set()),
        ("23.0", {"aufs", "overlay", "devicemapper"}, set()),
        ("24.0", {"devicemapper"}, {"aufs", "overlay"}),
        ("25.0", set(), {"aufs", "overlay", "devicemapper"}),
    ],
)
def test_each_old_driver_is_deprecated_then_removed_in_its_release(engine, deprecated, removed):
    drivers = report(engine, evidence(host="ubuntu-18.04-aufs"))["drivers"]
    for name in ("aufs", "overlay", "devicemapper"):
        assert drivers[name]["deprecated"] is (name in deprecated), name
        assert drivers[name]["removed"] is (name in removed), name


def test_a_blacklisted_filesystem_warns_by_how_the_kernel_offers_it():
    loaded = report("27.0", evidence())["drivers"]["overlay2"]["warnings"]
    assert any(
        w.startswith("overlay is blacklisted in /etc/modprobe.d/hardening.conf:1; it is loaded now")
        for w in loaded
    )
    hardened = evidence(host="hardened-overlay-disabled", backing="xfs", probe=None)
    warnings = report("24.0", hardened)["drivers"]["overlay2"]["warnings"]
    assert any("it will not load on demand" in w for w in warnings)


def test_a_test_mount_that_worked_needs_no_further_word():
    overlay2 = report("27.0", evidence())["drivers"]["overlay2"]
    assert overlay2["supported"] is True
    assert not any("not confirmed by a test mount" in w for w in overlay2["warnings"])


def test_without_a_probe_an_unusable_upper_filesystem_is_refused_by_type():
    overlay2 = report("27.0", evidence(backing="nfs", probe=None, d_type=True))["drivers"][
        "overlay2"
    ]
    assert overlay2["supported"] is False
    assert overlay2["reasons"] == ["overlay cannot use a nfs filesystem as its upper layer"]


@pytest.mark.parametrize(
    "backing, hint",
    [
        ("ext4", " (ext needs the filetype feature: tune2fs -O filetype)"),
        ("xfs", " (xfs needs ftype=1: reformat with mkfs.xfs -n ftype=1)"),
        ("btrfs", ""),
    ],
)
def test_d_type_off_says_how_to_turn_it_on_where_it_can(backing, hint):
    probe = dict(PROBE_OK, d_type=False)
    reasons = report("27.0", evidence(backing=backing, probe=probe))["drivers"]["overlay2"][
        "reasons"
    ]
    assert reasons == ["the %s backing filesystem does not support d_type%s" % (backing, hint)]


@pytest.mark.parametrize(
    "driver, engine, supported",
    [
        # Before 17.12 dockerd warned about a new overlay store without d_type; overlay2 never
        # took one.
        ("overlay", "17.09", True),
        ("overlay", "17.11", True),
        ("overlay", "17.12", False),
        ("overlay2", "17.09", False),
    ],
)
def test_a_new_store_without_d_type_is_refused_from_17_12_and_always_for_overlay2(
    driver, engine, supported
):
    probe = dict(PROBE_OK, d_type=False)
    verdict = report(engine, evidence(backing="ext4", probe=probe))["drivers"][driver]
    assert verdict["supported"] is supported
    if supported:
        assert (
            "the backing filesystem does not support d_type (ext needs the filetype feature: "
            "tune2fs -O filetype)" in verdict["warnings"]
        )


def test_overlay2_size_names_the_backing_filesystem_that_lacks_project_quota():
    ext4 = report("27.0", evidence(backing="ext4"))["drivers"]["overlay2"]["warnings"]
    assert (
        "storage-opt overlay2.size is unavailable: it needs xfs mounted with pquota/prjquota "
        "(backing filesystem is ext4)" in ext4
    )
    xfs = report("27.0", evidence(backing="xfs"))["drivers"]["overlay2"]["warnings"]
    assert (
        "storage-opt overlay2.size is unavailable: it needs xfs mounted with pquota/prjquota" in xfs
    )


def test_devicemapper_and_vfs_warn_what_they_are_for():
    loop_lvm = "devicemapper in loop-lvm mode is for testing only; production needs direct-lvm"
    usable = report("20.10", evidence(devicemapper={"available": True}))["drivers"]
    assert loop_lvm in usable["devicemapper"]["warnings"]
    assert usable["vfs"]["warnings"] == [
        "vfs copies every layer in full: slow and large; meant for testing"
    ]
    assert usable["overlay2"]["supported"] is True
    assert not any("vfs copies" in w for w in usable["overlay2"]["warnings"])
    refused = report("20.10", evidence(devicemapper=NO_DM))["drivers"]["devicemapper"]
    assert refused["supported"] is False
    assert loop_lvm not in refused["warnings"]


@pytest.mark.parametrize(
    "engine, order",
    [
        ("24.0", ["overlay2", "fuse-overlayfs", "btrfs", "zfs", "devicemapper", "vfs"]),
        ("25.0", ["overlay2", "fuse-overlayfs", "btrfs", "zfs", "vfs"]),
    ],
)
def test_devicemapper_leaves_the_priority_list_in_25_0(engine, order):
    assert _drivers.priority_list(_drivers.parse_engine_version(engine)) == order


def test_a_blacklisted_built_in_filesystem_warns_that_it_is_built_in_now():
    ev = evidence()
    ev["overlay"] = dict(ev["overlay"], how="builtin", blacklisted_by=["/etc/modprobe.d/x.conf:2"])
    warnings = report("27.0", ev)["drivers"]["overlay2"]["warnings"]
    assert any(
        w.startswith("overlay is blacklisted in /etc/modprobe.d/x.conf:2; it is builtin now")
        for w in warnings
    )
