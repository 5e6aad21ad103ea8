import os
import re
from collections import namedtuple

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _capacity
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (
    parse_mountinfo_line,
)

Statvfs = namedtuple(
    "Statvfs",
    "f_bsize f_frsize f_blocks f_bfree f_bavail f_files f_ffree f_favail f_flag f_namemax",
)
XFS_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "xfs")


def statvfs(blocks, bfree, bavail, files, ffree, frsize=4096):
    return Statvfs(frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, 0, 255)


# A 256 MB ext4 made with mke2fs -N 4096, as df -B1 and df -i showed it (sizes in 4 KiB blocks).
EXT4_SMALL = statvfs(blocks=61628, bfree=59581, bavail=56089, files=4096, ffree=4085)


def test_byte_figures_as_df_b1():
    figures = _capacity.byte_figures(EXT4_SMALL)
    assert figures == {
        "total": 61628 * 4096,
        "used": (61628 - 59581) * 4096,
        "free": 59581 * 4096,
        "available": 56089 * 4096,
        # df: used / (used + avail), rounded up: 2047 / 58136 = 3.52% -> 4
        "used_percent": 4,
        "available_percent": 91.01,
    }


def test_inode_figures_as_df_i():
    assert _capacity.inode_figures(EXT4_SMALL) == {
        "limited": True,
        "total": 4096,
        "used": 11,
        "free": 4085,
        "used_percent": 1,  # 11 / 4096 = 0.27%, rounded up as df does
        "free_percent": 99.73,
    }


def test_btrfs_inodes_are_not_limited_and_never_judged():
    st = statvfs(blocks=65536, bfree=10, bavail=10, files=0, ffree=0)
    inodes = _capacity.inode_figures(st)
    assert inodes["limited"] is False and inodes["free_percent"] is None
    status, reasons = _capacity.threshold_status(
        _capacity.byte_figures(statvfs(65536, 60000, 60000, 0, 0)),
        inodes,
        _capacity.DEFAULT_THRESHOLDS,
    )
    assert (status, reasons) == ("ok", [])


def test_frsize_zero_falls_back_to_bsize():
    st = Statvfs(1024, 0, 100, 50, 40, 10, 5, 5, 0, 255)
    assert _capacity.byte_figures(st)["total"] == 102400


@pytest.mark.parametrize(
    "free, expected",
    [
        # 4096 inodes: warn below 10% free (409.6), fail below 5% free (204.8)
        (4096, "ok"),
        (410, "ok"),
        (409, "warn"),
        (205, "warn"),
        (204, "fail"),
        (0, "fail"),
    ],
)
def test_inode_levels_at_exact_counts(free, expected):
    inodes = _capacity.inode_figures(statvfs(1000, 1000, 1000, 4096, free))
    bytes_ = _capacity.byte_figures(statvfs(1000, 1000, 1000, 4096, free))
    status, reasons = _capacity.threshold_status(bytes_, inodes, _capacity.DEFAULT_THRESHOLDS)
    assert status == expected
    assert len(reasons) == (0 if expected == "ok" else 1)
    if expected != "ok":
        assert reasons[0].startswith("inodes: ")
        assert "(%d of 4096)" % free in reasons[0]


@pytest.mark.parametrize(
    "available, expected",
    [(1000, "ok"), (100, "ok"), (99, "warn"), (50, "warn"), (49, "fail")],
)
def test_byte_levels_judge_available_not_free(available, expected):
    # free (root's reserve included) stays high; only available counts
    st = statvfs(blocks=1000, bfree=900, bavail=available, files=100, ffree=100)
    status, _reasons = _capacity.threshold_status(
        _capacity.byte_figures(st), _capacity.inode_figures(st), _capacity.DEFAULT_THRESHOLDS
    )
    assert status == expected


def test_worse_of_bytes_and_inodes_wins_and_both_are_named():
    st = statvfs(blocks=1000, bfree=80, bavail=80, files=1000, ffree=10)
    status, reasons = _capacity.threshold_status(
        _capacity.byte_figures(st), _capacity.inode_figures(st), _capacity.DEFAULT_THRESHOLDS
    )
    assert status == "fail"
    assert reasons == [
        "bytes: 8% available (327680 of 4096000), below the warn threshold of 10%",
        "inodes: 1% free (10 of 1000), below the fail threshold of 5%",
    ]


def test_zero_thresholds_never_warn():
    thresholds = _capacity.validate_thresholds(dict.fromkeys(_capacity.DEFAULT_THRESHOLDS, 0))
    st = statvfs(blocks=1000, bfree=0, bavail=0, files=10, ffree=0)
    status, _reasons = _capacity.threshold_status(
        _capacity.byte_figures(st), _capacity.inode_figures(st), thresholds
    )
    assert status == "ok"


@pytest.mark.parametrize(
    "given, message",
    [
        ({"inode_warn_percent": 101}, "inode_warn_percent must be from 0 to 100"),
        ({"bytes_fail_percent": -1}, "bytes_fail_percent must be from 0 to 100"),
        ({"inode_warn_percent": "many"}, "inode_warn_percent must be a number"),
        (
            {"inode_warn_percent": 5, "inode_fail_percent": 8},
            "inode_fail_percent (8) is above inode_warn_percent (5)",
        ),
        ({"bytes_fail_percent": 20}, "bytes_fail_percent (20) is above bytes_warn_percent (10)"),
    ],
)
def test_bad_thresholds_name_the_option(given, message):
    with pytest.raises(
        _capacity.CapacityError, match="^" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        _capacity.validate_thresholds(given)


def test_thresholds_defaults_fill_in_and_equal_is_allowed():
    checked = _capacity.validate_thresholds({"bytes_warn_percent": 5, "inode_fail_percent": None})
    assert checked == {
        "inode_warn_percent": 10.0,
        "inode_fail_percent": 5.0,
        "bytes_warn_percent": 5.0,
        "bytes_fail_percent": 5.0,
    }


@pytest.mark.parametrize(
    "statuses, worst",
    [([], "ok"), (["ok", "warn"], "warn"), (["fail", "warn", "ok"], "fail"), (["ok"], "ok")],
)
def test_worst_status(statuses, worst):
    assert _capacity.worst_status(statuses) == worst


ROOT = parse_mountinfo_line("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw")
OWN = parse_mountinfo_line("40 22 254:17 / /var/lib/docker rw shared:20 - xfs /dev/vdb1 rw")
BIND = parse_mountinfo_line(
    "41 22 254:0 /srv/docker /var/lib/docker rw shared:1 - ext4 /dev/vda rw"
)
PROC = parse_mountinfo_line("23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw")


@pytest.mark.parametrize(
    "mount, separate", [(OWN, True), (BIND, False), (ROOT, False), (None, None)]
)
def test_separate_from_root_compares_devices(mount, separate):
    assert _capacity.separate_from_root(mount, ROOT) is separate


def test_pseudo_filesystem_is_refused_with_the_option_named():
    problem = _capacity.pseudo_filesystem_problem("/proc/1", PROC, "paths")
    assert problem.startswith("paths /proc/1 is on /proc, a proc pseudo filesystem")
    assert _capacity.pseudo_filesystem_problem("/var/lib/docker", OWN, "data_root") is None


def test_filesystem_report_carries_mount_and_figures():
    entry = _capacity.filesystem_report(
        "/var/lib/docker", "data_root", EXT4_SMALL, OWN, ROOT, _capacity.DEFAULT_THRESHOLDS
    )
    assert entry["mount_point"] == "/var/lib/docker"
    assert entry["device"] == "/dev/vdb1" and entry["device_number"] == "254:17"
    assert entry["separate_from_root"] is True
    assert entry["inodes"]["free"] == 4085
    assert entry["status"] == "ok" and entry["reasons"] == []


def _fixture(name, mode="r"):
    with open(os.path.join(XFS_FIXTURES, name), mode) as handle:
        return handle.read()


def test_xfs_superblock_of_a_real_mkfs():
    # mkfs.xfs -i maxpct=5 on a 320 MiB image: 81920 blocks of 4 KiB, 512-byte inodes
    geometry = _capacity.parse_xfs_superblock(bytes.fromhex(_fixture("superblock-imaxpct5.hex")))
    assert geometry == {
        "block_size": 4096,
        "data_blocks": 81920,
        "inodes_per_block": 8,
        "imaxpct": 5,
    }
    # 5% of 81920 blocks = 4096 blocks, 8 inodes each
    assert _capacity.xfs_inode_ceiling(geometry) == 32768


def test_xfs_info_gives_the_same_geometry():
    by_info = _capacity.parse_xfs_info(_fixture("xfs_info-imaxpct5.txt"))
    by_superblock = _capacity.parse_xfs_superblock(
        bytes.fromhex(_fixture("superblock-imaxpct5.hex"))
    )
    assert by_info == by_superblock


@pytest.mark.parametrize("data", [b"", b"EXT4" + b"\0" * 200, b"XFSB" + b"\0" * 20])
def test_not_an_xfs_superblock(data):
    assert _capacity.parse_xfs_superblock(data) is None


@pytest.mark.parametrize(
    "geometry, ceiling",
    [
        ({"imaxpct": 0, "data_blocks": 1000, "inodes_per_block": 8}, None),
        ({"imaxpct": 25, "data_blocks": None, "inodes_per_block": 8}, None),
        # 25% of 1001 blocks = 250 blocks; whole chunks of 8 blocks: 248 blocks x 8 inodes
        ({"imaxpct": 25, "data_blocks": 1001, "inodes_per_block": 8}, 1984),
        # 256-byte inodes on 4 KiB blocks: 16 per block, chunks of 4 blocks: 248 x 16
        ({"imaxpct": 25, "data_blocks": 1001, "inodes_per_block": 16}, 3968),
        (None, None),
    ],
)
def test_xfs_inode_ceiling(geometry, ceiling):
    assert _capacity.xfs_inode_ceiling(geometry) == ceiling


def test_xfs_info_without_imaxpct_is_unknown():
    assert _capacity.parse_xfs_info("meta-data=/dev/sda isize=512\n") is None


GIB = 1 << 30


@pytest.mark.parametrize(
    "used_bytes, used_inodes, target_bytes, target_inodes, fits, need",
    [
        # small trees: the floors (1 GiB, 10000 inodes) decide
        (100 * 2**20, 5000, GIB + 100 * 2**20, 15000, True, (GIB + 100 * 2**20, 15000)),
        (100 * 2**20, 5000, GIB + 100 * 2**20 - 1, 15000, False, (GIB + 100 * 2**20, 15000)),
        (100 * 2**20, 5000, 10 * GIB, 14999, False, (GIB + 100 * 2**20, 15000)),
        # big trees: 10% of the used figures
        (100 * GIB, 2000000, 110 * GIB, 2200000, True, (110 * GIB, 2200000)),
        (100 * GIB, 2000000, 110 * GIB, 2199999, False, (110 * GIB, 2200000)),
        # a target without an inode count (btrfs) is not judged on inodes
        (100 * GIB, 2000000, 110 * GIB, None, True, (110 * GIB, 2200000)),
    ],
)
def test_fit_on_target(used_bytes, used_inodes, target_bytes, target_inodes, fits, need):
    result = _capacity.fit_on_target(used_bytes, used_inodes, target_bytes, target_inodes, 10)
    assert result["fits"] is fits
    assert (result["need"]["bytes"], result["need"]["inodes"]) == need
    assert len(result["reasons"]) == (0 if fits else 1)


def test_fit_reasons_name_both_shortfalls():
    result = _capacity.fit_on_target(GIB, 100, 0, 0, 10)
    assert result["reasons"] == [
        "needs %d bytes (%d used + %d margin), the target has 0 available" % (2 * GIB, GIB, GIB),
        "needs 10100 inodes (100 used + 10000 margin), the target has 0 free",
    ]


@pytest.mark.parametrize(
    "text, root",
    [
        ('version = 2\nroot = "/srv/containerd"\nstate = "/run/containerd"\n', "/srv/containerd"),
        ("root = '/srv/literal' # comment\n", "/srv/literal"),
        ('  root="/srv/tight"\n', "/srv/tight"),
        ('root = "/srv/with\\"quote"\n', '/srv/with"quote'),
        # a root inside a table is another setting
        ('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  root = "/other"\n', None),
        ('# root = "/commented"\n', None),
        ("rootless = true\n", None),
        ("", None),
    ],
)
def test_parse_containerd_root(text, root):
    assert _capacity.parse_containerd_root(text) == root


def test_read_containerd_root(tmp_path):
    config = tmp_path / "config.toml"
    assert _capacity.read_containerd_root(str(config)) == ("/var/lib/containerd", "default")
    config.write_text('root = "/srv/containerd/"\n')
    assert _capacity.read_containerd_root(str(config)) == ("/srv/containerd", str(config))
    config.write_text('root = "relative"\n')
    assert _capacity.read_containerd_root(str(config)) == ("/var/lib/containerd", "default")


@pytest.mark.parametrize(
    "free, expected",
    [
        # The audit's and capacity_info's defaults on 100000 inodes: exactly 5% free is not
        # below the fail threshold, exactly 10% not below the warn threshold.
        (4999, "fail"),
        (5000, "warn"),
        (9999, "warn"),
        (10000, "ok"),
    ],
)
def test_threshold_level_at_exactly_the_percentages(free, expected):
    assert _capacity.threshold_level(free, 100000, 10.0, 5.0) == expected


@pytest.mark.parametrize("free, expected", [(99, "fail"), (100, "ok"), (1000, "ok")])
def test_threshold_level_fails_only_below_the_absolute_minimum(free, expected):
    assert _capacity.threshold_level(free, 1000, 0, 0, 100) == expected


@pytest.mark.parametrize(
    "free, total, expected",
    [
        # Exact, not to a hundredth: 5000 of 100001 is 4.99995% free, below 5%.
        (5000, 100001, "fail"),
        (10000, 100001, "warn"),
    ],
)
def test_threshold_level_is_exact_below_a_hundredth_of_a_percent(free, total, expected):
    assert _capacity.threshold_level(free, total, 10.0, 5.0) == expected


def test_an_empty_filesystem_has_no_percentages():
    st = statvfs(blocks=0, bfree=0, bavail=0, files=0, ffree=0)
    assert _capacity.byte_figures(st) == {
        "total": 0,
        "used": 0,
        "free": 0,
        "available": 0,
        "used_percent": None,
        "available_percent": None,
    }
    assert _capacity.inode_figures(st) == {
        "limited": False,
        "total": 0,
        "used": 0,
        "free": 0,
        "used_percent": None,
        "free_percent": None,
    }


@pytest.mark.parametrize("used, used_percent", [(1, 34), (2, 67), (3, 100)])
def test_used_percent_is_rounded_up_as_df_does(used, used_percent):
    st = statvfs(blocks=3, bfree=3 - used, bavail=3 - used, files=3, ffree=3 - used)
    assert _capacity.byte_figures(st)["used_percent"] == used_percent
    assert _capacity.inode_figures(st)["used_percent"] == used_percent


def test_thresholds_left_out_or_at_100_are_taken():
    defaults = _capacity.validate_thresholds({"inode_warn_percent": None})
    assert defaults == _capacity.DEFAULT_THRESHOLDS
    assert _capacity.validate_thresholds({"bytes_warn_percent": 100})["bytes_warn_percent"] == 100
    with pytest.raises(_capacity.CapacityError, match="must be from 0 to 100"):
        _capacity.validate_thresholds({"bytes_warn_percent": 100.5})


def test_an_xfs_superblock_needs_its_first_128_bytes():
    data = bytes.fromhex(_fixture("superblock-imaxpct5.hex"))
    assert _capacity.parse_xfs_superblock(data[:128])["imaxpct"] == 5
    assert _capacity.parse_xfs_superblock(data[:127]) is None


def test_xfs_info_without_block_or_inode_size_has_no_inodes_per_block():
    text = _fixture("xfs_info-imaxpct5.txt")
    geometry = _capacity.parse_xfs_info(re.sub(r"isize=\d+", "", text))
    assert geometry["inodes_per_block"] is None
    assert geometry["imaxpct"] == 5
    assert _capacity.xfs_inode_ceiling(geometry) is None


@pytest.mark.parametrize(
    "per_block, ceiling",
    [
        # 64 inodes per block: a chunk is one block (never less).
        (64, 250 * 64),
        (128, 250 * 128),
    ],
)
def test_xfs_inode_ceiling_with_chunks_of_one_block(per_block, ceiling):
    geometry = {"imaxpct": 25, "data_blocks": 1001, "inodes_per_block": per_block}
    assert _capacity.xfs_inode_ceiling(geometry) == ceiling
