"""Files the collection rewrites keep their SELinux label.

This kernel has no SELinux, but as root a ``security.selinux`` extended attribute can still be
set and read on ext4: the label a Fedora host gives daemon.json, carried over by the rewrite as
it would be there."""

import os

import pytest
from ansible_module import run_module

pytestmark = pytest.mark.integration

LABEL = b"system_u:object_r:container_config_t:s0\x00"


def test_daemon_json_keeps_its_selinux_label_across_a_rewrite(make_loopfs):
    fs = make_loopfs("ext4", size_mb=64)
    path = os.path.join(fs.mount_point, "daemon.json")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"log-driver": "json-file"}\n')
    os.setxattr(path, "security.selinux", LABEL)
    inode_before = os.stat(path).st_ino

    result = run_module(
        "daemon_config", {"config_path": path, "storage_driver": "vfs", "support_check": False}
    )
    assert result.get("changed") is True, result.get("msg")
    assert os.stat(path).st_ino != inode_before  # replaced by a rename, not rewritten in place
    assert os.getxattr(path, "security.selinux") == LABEL
    # A new file gets no label of ours: the policy's default for the directory applies.
    other = os.path.join(fs.mount_point, "new.json")
    created = run_module(
        "daemon_config", {"config_path": other, "storage_driver": "vfs", "support_check": False}
    )
    assert created.get("changed") is True, created.get("msg")
    assert "security.selinux" not in os.listxattr(other)
