"""What uses a directory: mounts inside it (from recorded mountinfo) and processes (this
machine's own /proc, with a real child process)."""

import subprocess

from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import parse_mountinfo
from ansible_collections.dockerhost.storage.plugins.module_utils._path_users import (
    mounts_inside,
    processes_using,
)

# A new disk on /srv/docker; an engine on it has bind-mounted its data-root onto itself and
# mounted a container's root filesystem and shm inside; /srv/docker-old is only a neighbour.
MOUNTINFO = """\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
60 22 7:0 / /srv/docker rw,relatime shared:30 - xfs /dev/loop0 rw
61 22 7:1 / /srv/docker-old rw,relatime shared:31 - ext4 /dev/loop1 rw
70 22 254:1 /var/lib/docker /var/lib/docker rw,relatime shared:40 - ext4 /dev/vda1 rw
80 60 0:50 / /srv/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=l/A
81 60 0:51 / /srv/docker/containers/c1/mounts/shm rw - tmpfs shm rw,size=65536k
"""


def test_mounts_inside_a_target_an_engine_uses():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts_inside("/srv/docker", mounts) == [
        "/srv/docker/overlay2/abc/merged (overlay)",
        "/srv/docker/containers/c1/mounts/shm (tmpfs)",
    ]


def test_its_own_disk_and_a_neighbour_are_not_users():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts_inside("/srv/docker-old", mounts) == []
    assert mounts_inside("/srv/docker/", parse_mountinfo(MOUNTINFO.splitlines()[1] + "\n")) == []


def test_a_bind_mount_onto_itself_is_a_dockerd_that_used_it():
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts_inside("/var/lib/docker", mounts) == [
        "/var/lib/docker (a bind mount onto itself, as dockerd makes)"
    ]


def test_a_process_working_inside_is_named(tmp_path):
    inside = tmp_path / "target" / "sub"
    inside.mkdir(parents=True)
    process = subprocess.Popen(["sleep", "60"], cwd=str(inside))
    try:
        found = processes_using(str(tmp_path / "target"))
        assert (process.pid, "sleep", "working directory") in found
        assert processes_using(str(tmp_path / "targ")) == []
    finally:
        process.kill()
        process.wait()


def test_a_process_with_an_open_file_inside_is_named(tmp_path):
    (tmp_path / "target").mkdir()
    held = tmp_path / "target" / "metadata.db"
    held.write_text("")
    process = subprocess.Popen(["sh", "-c", 'exec 3<"$0"; exec sleep 60', str(held)], cwd="/")
    try:
        for _attempt in range(100):
            found = [
                entry
                for entry in processes_using(str(tmp_path / "target"))
                if entry[0] == process.pid
            ]
            if found and found[0][1] == "sleep":
                break
            subprocess.run(["sleep", "0.02"], check=True)
        assert found == [(process.pid, "sleep", "open file %s" % held)]
    finally:
        process.kill()
        process.wait()
