"""What the overlay probe reports for each answer of its test mount's process: made and right,
refused by the kernel, refused for lack of privilege, or not tried at all."""

import errno
import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._filesystem_probe import (
    judge_test_mount,
)


def test_a_mount_that_shows_both_lower_layers_passes():
    assert judge_test_mount({"stage": "view", "visible": ["dir", "file"]}) == (True, None)


def test_a_merged_view_without_both_layers_fails_and_says_what_it_showed():
    assert judge_test_mount({"stage": "view", "visible": ["file"]}) == (
        False,
        "merged view shows ['file'] instead of both lower layers",
    )


@pytest.mark.parametrize(
    "answer",
    [{"stage": "mount", "errno": errno.EINVAL}, {"stage": "view", "errno": errno.EIO}],
)
def test_a_mount_the_kernel_refuses_or_cannot_show_fails_with_the_errno(answer):
    ok, error = judge_test_mount(answer)
    assert ok is False
    assert error.startswith("overlay mount with two lower directories failed: ")
    assert error.endswith("(%s)" % errno.errorcode[answer["errno"]])


@pytest.mark.parametrize("stage", ["namespace", "private", "mount"])
@pytest.mark.parametrize("number", [errno.EPERM, errno.EACCES])
def test_lack_of_privilege_at_any_step_is_unknown_with_the_become_hint(stage, number):
    ok, error = judge_test_mount({"stage": stage, "errno": number})
    assert ok is None
    assert error == (
        "the overlay test mount was not permitted: %s (%s); run as root (become: true)"
        % (os.strerror(number), errno.errorcode[number])
    )


def test_a_chroot_whose_root_is_no_mount_point_is_unknown_and_named():
    ok, error = judge_test_mount({"stage": "private", "errno": errno.EINVAL})
    assert ok is None
    assert "/ is not a mount point for this process (a chroot?)" in error


def test_no_mount_namespace_left_names_the_sysctl():
    ok, error = judge_test_mount({"stage": "namespace", "errno": errno.ENOSPC})
    assert ok is None
    assert "(ENOSPC)" in error and "user.max_mnt_namespaces" in error


@pytest.mark.parametrize(
    "answer, how",
    [
        ({"stage": "ended", "signal": 9}, "was killed by signal 9"),
        ({"stage": "ended", "exit_status": 1}, "exited with status 1"),
        ({"stage": "fork", "errno": errno.EAGAIN}, "(EAGAIN)"),
    ],
)
def test_a_process_that_gave_no_answer_is_unknown_not_unsupported(answer, how):
    ok, error = judge_test_mount(answer)
    assert ok is None
    assert how in error
