"""Who fills the disk: the engine's disk usage ranked, with the containers' logs read from the
data-root."""

from __future__ import annotations

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils import _disk_users
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    EngineUnavailable,
)

A = "a" * 64
B = "b" * 64
C = "c" * 64

# A /system/df answer as dockerd 20.10 gives it (trimmed to the keys read): SizeRw is left out
# when it is 0, SharedSize is -1 when not computed.
SYSTEM_DF = {
    "LayersSize": 300_000_000,
    "Images": [
        {
            "Id": "sha256:" + "1" * 64,
            "RepoTags": ["base:1"],
            "Size": 100_000_000,
            "SharedSize": 100_000_000,
            "Containers": 2,
        },
        {
            "Id": "sha256:" + "2" * 64,
            "RepoTags": ["<none>:<none>"],
            "Size": 250_000_000,
            "SharedSize": 100_000_000,
            "Containers": 0,
        },
        {
            "Id": "sha256:" + "3" * 64,
            "RepoTags": ["app:2", "app:latest"],
            "Size": 180_000_000,
            "SharedSize": 100_000_000,
            "Containers": 1,
        },
        {"Id": "sha256:" + "4" * 64, "RepoTags": ["odd:1"], "Size": 5, "SharedSize": -1},
    ],
    "Containers": [
        {"Id": A, "Names": ["/web"], "Image": "app:2", "State": "running", "SizeRw": 10},
        {"Id": B, "Names": ["/batch"], "Image": "base:1", "State": "exited", "SizeRw": 5000},
        {"Id": C, "Names": ["/idle"], "Image": "base:1", "State": "exited"},
    ],
}


def test_the_biggest_containers_count_their_writable_layer_and_log_together():
    users = _disk_users.rank(SYSTEM_DF, {A: 9000, B: 0, C: None}, top=2)
    assert [
        (c["name"], c["writable_bytes"], c["log_bytes"], c["bytes"]) for c in users["containers"]
    ] == [
        ("web", 10, 9000, 9010),  # a small writable layer, a big log: first
        ("batch", 5000, 0, 5000),
    ]
    assert users["containers"][0]["id"] == "a" * 12
    assert users["totals"] == {
        "containers": 3,
        "writable_bytes": 5010,
        "log_bytes": 9000,
        "images": 4,
        "images_bytes": 300_000_000,
    }


def test_images_are_ranked_by_what_removing_them_gives_back():
    users = _disk_users.rank(SYSTEM_DF, {}, top=5)
    assert [(i["image"], i["unique_bytes"], i["containers"]) for i in users["images"]] == [
        ("222222222222", 150_000_000, 0),  # untagged: its short id
        ("app:2", 80_000_000, 1),
        ("base:1", 0, 2),
        ("odd:1", None, None),  # the engine did not compute the shared size
    ]


def test_a_missing_size_is_unknown_not_zero():
    answer = {"Containers": [{"Id": A, "Names": ["/x"], "SizeRw": -1}], "Images": []}
    [entry] = _disk_users.rank(answer, {A: 7})["containers"]
    assert (entry["writable_bytes"], entry["bytes"]) == (None, 7)


def _container_dir(root, identifier):
    directory = root / "containers" / identifier
    directory.mkdir(parents=True)
    return directory


def test_log_bytes_are_the_json_log_its_rotations_and_the_local_driver_files(tmp_path):
    directory = _container_dir(tmp_path, A)
    (directory / (A + "-json.log")).write_bytes(b"x" * 100)
    (directory / (A + "-json.log.1")).write_bytes(b"x" * 1000)
    (directory / (A + "-json.log.2.gz")).write_bytes(b"x" * 10)
    (directory / "config.v2.json").write_bytes(b"x" * 5000)  # not a log
    (directory / "local-logs").mkdir()
    (directory / "local-logs" / "container.log").write_bytes(b"x" * 3)
    assert _disk_users.log_bytes(str(tmp_path), A) == 1113


def test_log_bytes_of_a_container_without_a_directory_is_zero(tmp_path):
    assert _disk_users.log_bytes(str(tmp_path), A) == 0


@pytest.mark.parametrize("identifier", ["../" * 3 + "etc", "A" * 64, "a" * 63, ""])
def test_log_bytes_never_joins_what_is_not_a_container_id(tmp_path, identifier):
    assert _disk_users.log_bytes(str(tmp_path), identifier) is None


def test_a_symlinked_log_is_not_followed(tmp_path):
    directory = _container_dir(tmp_path, A)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 10_000)
    (directory / (A + "-json.log")).symlink_to(big)
    assert _disk_users.log_bytes(str(tmp_path), A) == 0


class _Engine:
    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.asked = answer, error, []

    def get(self, path):
        self.asked.append(path)
        if self.error:
            raise self.error
        return self.answer


def test_disk_users_reads_the_logs_of_every_container_the_engine_lists(tmp_path):
    (_container_dir(tmp_path, B) / (B + "-json.log")).write_bytes(b"x" * 70_000)
    engine = _Engine(SYSTEM_DF)
    users = _disk_users.disk_users(engine, str(tmp_path), top=1)
    assert engine.asked == ["/system/df"]
    assert [(c["name"], c["log_bytes"]) for c in users["containers"]] == [("batch", 70_000)]
    assert users["totals"]["log_bytes"] == 70_000


def test_an_engine_that_does_not_answer_is_a_problem_not_a_failure(tmp_path):
    engine = _Engine(error=EngineUnavailable("the engine on /run/docker.sock did not answer"))
    assert _disk_users.disk_users(engine, str(tmp_path)) == {
        "checked": False,
        "problem": "the engine's disk usage (GET /system/df): the engine on /run/docker.sock "
        "did not answer",
    }
    assert _disk_users.disk_users(_Engine([]), str(tmp_path))["checked"] is False
