"""capacity_info's report in the partial form storage_facts uses: a root that is missing is
left out and one that cannot be examined ends the list, named in ``problem``, where
capacity_info itself refuses."""

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import (
    _capacity,
    _capacity_report,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import (
    parse_mountinfo_line,
)

MOUNTS = [
    parse_mountinfo_line("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw"),
    parse_mountinfo_line("23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw"),
]
NO_PATHS = {"paths": []}


def examine(data_root, containerd_root, partial, source="engine"):
    return _capacity_report.examine_filesystems(
        NO_PATHS,
        str(data_root),
        source,
        MOUNTS,
        _capacity.DEFAULT_THRESHOLDS,
        (str(containerd_root), "option") if containerd_root else (None, None),
        partial=partial,
    )


def test_a_missing_data_root_is_left_out_and_containerd_root_still_examined(tmp_path):
    filesystems, real_root, problem = examine(tmp_path / "docker", tmp_path, partial=True)
    assert problem == "the data-root %s does not exist" % (tmp_path / "docker")
    assert real_root is None
    assert [(entry["role"], entry["path"]) for entry in filesystems] == [
        ("containerd_root", str(tmp_path))
    ]
    with pytest.raises(_capacity.CapacityError, match="is Docker installed"):
        examine(tmp_path / "docker", tmp_path, partial=False)


def test_a_root_on_a_pseudo_filesystem_ends_the_list_with_its_reason(tmp_path):
    filesystems, real_root, problem = examine(tmp_path, "/proc", partial=True)
    assert problem.startswith("containerd_root /proc is on /proc, a proc pseudo filesystem")
    assert real_root == str(tmp_path)
    assert [entry["role"] for entry in filesystems] == ["data_root"]
    with pytest.raises(_capacity.CapacityError, match="containerd_root /proc is on /proc"):
        examine(tmp_path, "/proc", partial=False)


def test_with_both_roots_in_place_there_is_no_problem(tmp_path):
    (tmp_path / "containerd").mkdir()
    for partial in (True, False):
        filesystems, real_root, problem = examine(tmp_path, tmp_path / "containerd", partial)
        assert problem is None and real_root == str(tmp_path)
        assert [entry["role"] for entry in filesystems] == ["data_root", "containerd_root"]


def test_a_containerd_root_option_that_is_not_a_directory_is_left_out_only_when_partial(
    tmp_path,
):
    params = {"containerd_root": str(tmp_path / "none"), "containerd_config": "/nonexistent"}
    assert _capacity_report.containerd_root_to_examine(params, False, [], partial=True) == (
        None,
        None,
    )
    assert _capacity_report.containerd_root_to_examine(params, False, []) == (
        str(tmp_path / "none"),
        "option",
    )
