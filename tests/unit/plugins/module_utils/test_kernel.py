import gzip
import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _kernel

HOSTS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "hosts")


def host(name):
    return os.path.join(HOSTS, name)


def support(name, fs):
    root = host(name)
    release = _kernel.kernel_release(root)
    config, _source, _problem = _kernel.read_kernel_config(root, release)
    return _kernel.filesystem_support(root, release, fs, fs, "CONFIG_%s_FS" % fs.upper(), config)


@pytest.mark.parametrize(
    "release, expected",
    [
        ("6.1.0-18-amd64", (6, 1, 0)),
        ("4.15.0-213-generic", (4, 15, 0)),
        ("5.4", (5, 4, 0)),
        ("", None),
        (None, None),
    ],
)
def test_parse_kernel_version(release, expected):
    assert _kernel.parse_kernel_version(release) == expected


def test_parse_kernel_config_reads_set_unset_and_strings():
    config = _kernel.parse_kernel_config(
        'CONFIG_OVERLAY_FS=y\n# CONFIG_AUFS_FS is not set\nCONFIG_LOCALVERSION="-custom"\n# comment\n'
    )
    assert config == {
        "CONFIG_OVERLAY_FS": "y",
        "CONFIG_AUFS_FS": "n",
        "CONFIG_LOCALVERSION": "-custom",
    }


def test_config_gz_is_preferred(tmp_path):
    (tmp_path / "proc").mkdir()
    with gzip.open(tmp_path / "proc" / "config.gz", "wt") as handle:
        handle.write("CONFIG_OVERLAY_FS=y\n")
    config, source, problem = _kernel.read_kernel_config(str(tmp_path), "6.1.0")
    assert (config, source, problem) == ({"CONFIG_OVERLAY_FS": "y"}, "/proc/config.gz", None)


def test_corrupt_config_gz_falls_back_to_boot_config(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "config.gz").write_bytes(b"not gzip at all")
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "config-6.1.0").write_text("CONFIG_OVERLAY_FS=m\n")
    config, source, problem = _kernel.read_kernel_config(str(tmp_path), "6.1.0")
    assert source == "/boot/config-6.1.0" and config["CONFIG_OVERLAY_FS"] == "m" and problem is None


def test_missing_kernel_config_says_where_it_looked():
    config, source, problem = _kernel.read_kernel_config(host("no-kernel-config"), "5.10.0-custom")
    assert config == {} and source is None
    assert "/proc/config.gz does not exist" in problem
    assert "/boot/config-5.10.0-custom does not exist" in problem


def test_aufs_loadable_on_ubuntu():
    result = support("ubuntu-18.04-aufs", "aufs")
    assert result["available"] is True and result["how"] == "loadable"


def test_overlay_disabled_by_install_line_names_file_and_line():
    result = support("hardened-overlay-disabled", "overlay")
    assert result["available"] is False
    assert result["how"] == "loadable"
    assert result["blocked_by"] == ["/etc/modprobe.d/CIS.conf:7"]
    assert result["blacklisted_by"] == ["/etc/modprobe.d/CIS.conf:8"]


def test_loaded_module_is_told_from_builtin():
    assert support("debian-12-overlay-module", "overlay")["how"] == "loaded"
    assert support("no-kernel-config", "overlay")["how"] == "builtin"


def test_blacklist_on_kernel_command_line():
    directives = _kernel.modprobe_directives(host("debian-12-overlay-module"), "aufs")
    assert directives == [
        {"file": "/proc/cmdline", "line": 1, "kind": "blacklist", "text": "module_blacklist=aufs"}
    ]


def test_absent_filesystem():
    result = support("hardened-overlay-disabled", "aufs")
    assert result == {"available": False, "how": "absent", "blocked_by": [], "blacklisted_by": []}


def test_module_parameters():
    params = _kernel.module_parameters(host("debian-12-overlay-module"), "overlay")
    assert params["redirect_dir"] == "Y" and params["metacopy"] == "N"
    assert _kernel.module_parameters(host("no-kernel-config"), "overlay") == {}


def test_read_filesystems_of_live_host_has_proc():
    assert "proc" in _kernel.read_filesystems("/")


def test_unregistered_filesystem_without_config_or_modules_is_unknown_not_absent():
    # no-kernel-config registers overlay but not aufs, and has no config and no /lib/modules.
    result = support("no-kernel-config", "aufs")
    assert result["how"] == "unknown" and result["available"] is None
