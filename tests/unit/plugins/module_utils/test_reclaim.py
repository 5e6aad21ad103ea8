"""What reclaim shows in diff mode and how it names the next step."""

from __future__ import annotations

from ansible_collections.dockerhost.storage.plugins.module_utils import _reclaim
from ansible_collections.dockerhost.storage.plugins.module_utils._reclaim_policy import read_policy


def _figures(bytes_free, inodes_free):
    return {
        "data_root": {
            "role": "data_root", "path": "/var/lib/docker", "bytes_total": 1000,
            "bytes_free": bytes_free, "bytes_free_percent": bytes_free / 10.0,
            "inodes_total": 100, "inodes_free": inodes_free, "inodes_free_percent": inodes_free,
        }
    }  # fmt: skip


def test_the_diff_lists_every_object_before_and_the_figures_after():
    image = {"kind": "image", "id": "sha256:ab", "name": "app:1", "bytes": 300, "inodes": 12,
             "age_seconds": 9}  # fmt: skip
    cache = {"kind": "build_cache", "id": "x1", "name": "fileop target (regular)", "bytes": 0,
             "inodes": None, "age_seconds": 3}  # fmt: skip
    result = {
        "data_root": "/var/lib/docker",
        "before": _figures(100, 3),
        "after": _figures(400, 15),
        "steps": [
            {"step": "build_cache", "removed": [cache]},
            {"step": "unused_images", "removed": [image]},
        ],
    }
    diff = _reclaim.diff(result)
    before = diff["before"].splitlines()
    assert before[0] == ("data_root /var/lib/docker: 100 bytes free (10.0%), 3 inodes free (3%)")
    assert before[1:] == [
        "build_cache build_cache x1 (fileop target (regular)): 0 bytes, ? inodes",
        "unused_images image sha256:ab (app:1): 300 bytes, 12 inodes",
    ]
    assert diff["after"].splitlines() == [
        "data_root /var/lib/docker: 400 bytes free (40.0%), 15 inodes free (15%)"
    ]


def test_the_next_step_is_the_first_left_out_after_the_last_that_ran():
    policy = read_policy({"steps": ["build_cache", "stopped_containers"]})
    assert _reclaim._next_step(policy, {"build_cache", "stopped_containers"}) == "unused_images"
    policy = read_policy({"steps": ["stopped_containers"]})
    assert _reclaim._next_step(policy, {"stopped_containers"}) == "unused_images"
    every = read_policy({"steps": list(_reclaim._reclaim_policy.LADDER)})
    assert _reclaim._next_step(every, set(_reclaim._reclaim_policy.LADDER)) is None


class _Engine:
    """An engine answering from dicts; records what was deleted."""

    def __init__(self, image, containers):
        self.image = image
        self.containers = containers
        self.deleted = []

    def get(self, path):
        return self.image if path.startswith("/images/") else self.containers

    def call(self, method, path, **_ignored):
        self.deleted.append(path)


def _image_candidate(tags):
    return {"kind": "image", "id": "sha256:" + "1" * 64, "tags": tags}


def test_an_image_is_not_untagged_when_a_container_uses_it_now():
    engine = _Engine({"RepoTags": ["app:1", "app:latest"]},
                     [{"ImageID": "sha256:" + "1" * 64, "Names": ["/web"]}])  # fmt: skip
    reason = _reclaim._remove_image({"client": engine}, _image_candidate(["app:1", "app:latest"]))
    assert reason == "a container uses it now (/web)"
    assert engine.deleted == []


def test_an_image_tagged_since_it_was_chosen_stays():
    engine = _Engine({"RepoTags": ["fresh:1"]}, [])
    reason = _reclaim._remove_image({"client": engine}, _image_candidate([]))
    assert reason == "its tags changed since it was chosen (fresh:1)"
    assert engine.deleted == []


def test_an_image_goes_by_each_tag_without_force():
    engine = _Engine({"RepoTags": ["app:1", "app:latest"]}, [])
    assert (
        _reclaim._remove_image({"client": engine}, _image_candidate(["app:1", "app:latest"]))
        is None
    )
    assert engine.deleted == ["/images/app%3A1?noprune=1", "/images/app%3Alatest?noprune=1"]
