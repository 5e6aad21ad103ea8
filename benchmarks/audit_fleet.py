"""Benchmark: the audit playbook over real SSH against ping and a naive shell playbook.

Run as root from the repository root, after scripts/setup-host has built the bookworm-python
image and with the host's dockerd running:

    .venv/bin/python benchmarks/audit_fleet.py [--hosts 20] [--rounds 2] [--forks 10]

It downloads Debian's openssh-server and libwrap0 packages (``apt-get download``, nothing is
installed on this host), builds an image ``dockerhost-bench/sshd`` from the bookworm-python
test image with sshd, a host key and an authorized key in it, and starts ``--hosts``
containers from it (no network). Ansible reaches each one over real SSH: the ssh client runs
``docker exec -i <container> /usr/sbin/sshd -i`` as its ProxyCommand, so each connection is
a full SSH session (key exchange, public-key authentication) with sshd in inetd mode, carried
over a pipe instead of TCP. ControlPersist is on, as ansible's default, with a fresh control
directory per run so that every run starts without connections. Pipelining is on for all runs.

Then, side by side, each ``--rounds`` times (the order rotates each round):

- ``ping``: ``ansible all -m ansible.builtin.ping``;
- ``audit``: ``ansible-playbook dockerhost.storage.audit`` (per-host and fleet reports,
  ``audit_fail_on=never``);
- ``naive``: a playbook gathering the same evidence with command and shell tasks: ``df -i``
  and ``df -B1`` of the data-root, ``docker info``, ``grep`` on /proc/filesystems,
  ``mountpoint``, ``stat`` of /etc/docker, daemon.json and the data-root, and the dockerd
  unit's drop-ins (``cat``).

Medians are printed and written to benchmarks/results/audit_fleet-<UTC time>.json with the
ratios audit/ping (target at most 2.0) and audit/naive (target at most 0.35). The containers
have no Docker: every host is audited as a host without Docker (the checks of /etc/docker and
daemon.json still run). Everything is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))

from collection_path import collections_root  # noqa: E402

RESULTS = os.path.join(REPO, "benchmarks", "results")
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
BASE_IMAGE = "dockerhost-test/bookworm-python:latest"
IMAGE = "dockerhost-bench/sshd:latest"
PREFIX = "dhs-bench-ssh-"
PACKAGES = ("openssh-server", "libwrap0")
VENV_BIN = os.path.dirname(sys.executable)

DOCKERFILE = """\
FROM %s
COPY root/ /
RUN useradd --system --home-dir /run/sshd --shell /usr/sbin/nologin sshd \\
 && mkdir -p /run/sshd /root/.ssh && chmod 0700 /root/.ssh \\
 && chmod 0600 /etc/ssh/ssh_host_ed25519_key /root/.ssh/authorized_keys
CMD ["sleep", "infinity"]
"""

SSHD_CONFIG = """\
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
"""

NAIVE_PLAYBOOK = """\
---
- name: Gather Docker storage evidence with shell and command tasks
  hosts: all
  gather_facts: false
  tasks:
    - name: Inodes of the data-root
      ansible.builtin.command: df -i /var/lib/docker
      changed_when: false
      failed_when: false
    - name: Bytes of the data-root
      ansible.builtin.command: df -B1 /var/lib/docker
      changed_when: false
      failed_when: false
    - name: Engine
      ansible.builtin.command: docker info
      changed_when: false
      failed_when: false
    - name: Overlay registered
      ansible.builtin.command: grep -w overlay /proc/filesystems
      changed_when: false
      failed_when: false
    - name: Data-root on its own filesystem
      ansible.builtin.command: mountpoint /var/lib/docker
      changed_when: false
      failed_when: false
    - name: Owners and modes
      ansible.builtin.command: stat -c '%U:%G %a %n' /etc/docker /etc/docker/daemon.json /var/lib/docker
      changed_when: false
      failed_when: false
    - name: dockerd flags in the unit and its drop-ins
      ansible.builtin.shell: cat /lib/systemd/system/docker.service /etc/systemd/system/docker.service.d/*.conf
      changed_when: false
      failed_when: false
"""


def run(argv, **kwargs):
    completed = subprocess.run(argv, check=False, capture_output=True, text=True, **kwargs)
    if completed.returncode != 0:
        raise RuntimeError(
            "%s failed (exit %d): %s%s"
            % (argv[:3], completed.returncode, completed.stdout[-2000:], completed.stderr[-2000:])
        )
    return completed


def build_image(work):
    """Build IMAGE from the bookworm-python image with Debian's sshd; return the client key."""
    debs = os.path.join(work, "debs")
    staging = os.path.join(work, "staging")
    root = os.path.join(work, "context", "root")
    os.makedirs(debs)
    for directory in ("etc/ssh", "root/.ssh", "usr/sbin", "usr/lib/x86_64-linux-gnu"):
        os.makedirs(os.path.join(root, directory))
    run(["apt-get", "download", *PACKAGES], cwd=debs)
    for deb in glob.glob(os.path.join(debs, "*.deb")):
        run(["dpkg-deb", "-x", deb, staging])
    # Only the files sshd needs: copying the packages' whole trees would replace the image's
    # /lib symbolic link (merged /usr) with a directory and break every program in it.
    for relative in ["usr/sbin/sshd"] + [
        os.path.relpath(path, staging)
        for path in glob.glob(os.path.join(staging, "usr/lib/x86_64-linux-gnu/libwrap.so*"))
    ]:
        shutil.copy2(
            os.path.join(staging, relative), os.path.join(root, relative), follow_symlinks=False
        )
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(work, "client")])
    run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            os.path.join(root, "etc", "ssh", "ssh_host_ed25519_key"),
        ]
    )
    shutil.copy(os.path.join(work, "client.pub"), os.path.join(root, "root/.ssh/authorized_keys"))
    with open(os.path.join(root, "etc", "ssh", "sshd_config"), "w", encoding="utf-8") as handle:
        handle.write(SSHD_CONFIG)
    with open(os.path.join(work, "context", "Dockerfile"), "w", encoding="utf-8") as handle:
        handle.write(DOCKERFILE % BASE_IMAGE)
    run([DOCKER, "build", "--network", "none", "-q", "-t", IMAGE, os.path.join(work, "context")])
    return os.path.join(work, "client")


def inventory(work, names, key):
    hosts = {
        name: {
            "ansible_connection": "ssh",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": (
                "-o ProxyCommand='%s exec -i %%h /usr/sbin/sshd -i' "
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" % DOCKER
            ),
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        for name in names
    }
    path = os.path.join(work, "inventory.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"all": {"hosts": hosts}}, handle)
    return path


def timed(argv, work, label):
    """Wall time of ``argv`` with a fresh ssh control directory; fail on a bad exit."""
    control = tempfile.mkdtemp(prefix="cp-", dir=work)
    env = dict(
        os.environ,
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        ANSIBLE_COLLECTIONS_PATH=collections_root(),
        ANSIBLE_PIPELINING="1",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_SSH_CONTROL_PATH_DIR=control,
        ANSIBLE_NOCOLOR="1",
    )
    start = time.monotonic()
    completed = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if completed.returncode != 0:
        raise RuntimeError(
            "%s failed (exit %d):\n%s\n%s"
            % (label, completed.returncode, completed.stdout[-4000:], completed.stderr[-2000:])
        )
    # Close the persisted connections so that they do not linger into the next run.
    for socket_path in glob.glob(os.path.join(control, "*")):
        subprocess.run(
            ["ssh", "-o", "ControlPath=" + socket_path, "-O", "exit", "x"],
            capture_output=True,
            check=False,
        )
    return elapsed, completed.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="audit-fleet-bench-")
    names = ["%s%02d" % (PREFIX, index) for index in range(args.hosts)]
    try:
        key = build_image(work)
        for name in names:
            run([DOCKER, "run", "-d", "--network", "none", "--name", name, IMAGE])
        inv = inventory(work, names, key)
        naive = os.path.join(work, "naive.yml")
        with open(naive, "w", encoding="utf-8") as handle:
            handle.write(NAIVE_PLAYBOOK)
        forks = ["--forks", str(args.forks)]
        commands = {
            "ping": [
                os.path.join(VENV_BIN, "ansible"),
                "all",
                "-i",
                inv,
                "-m",
                "ansible.builtin.ping",
            ]
            + forks,
            "audit": [
                os.path.join(VENV_BIN, "ansible-playbook"),
                "dockerhost.storage.audit",
                "-i",
                inv,
                "-e",
                "audit_fail_on=never",
                "-e",
                "audit_report_dir=" + os.path.join(work, "reports"),
            ]
            + forks,
            "naive": [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inv, naive] + forks,
        }
        times = {label: [] for label in commands}
        order = list(commands)
        for round_index in range(args.rounds):
            for label in order[round_index % 3 :] + order[: round_index % 3]:
                elapsed, _output = timed(commands[label], work, label)
                times[label].append(elapsed)
                print("round %d %-5s %6.2f s" % (round_index + 1, label, elapsed), flush=True)
        with open(os.path.join(work, "reports", "fleet.json"), encoding="utf-8") as handle:
            summary = json.load(handle)["summary"]
        medians = {label: statistics.median(values) for label, values in times.items()}
        result = {
            "hosts": args.hosts,
            "rounds": args.rounds,
            "forks": args.forks,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "times": times,
            "medians": medians,
            "audit_over_ping": medians["audit"] / medians["ping"],
            "audit_over_naive": medians["audit"] / medians["naive"],
            "fleet_summary": summary,
        }
        print(
            json.dumps({k: result[k] for k in ("medians", "audit_over_ping", "audit_over_naive")})
        )
        os.makedirs(RESULTS, exist_ok=True)
        path = os.path.join(
            RESULTS, "audit_fleet-%s.json" % time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        )
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        print("written to %s" % path)
    finally:
        subprocess.run([DOCKER, "rm", "-f", *names], capture_output=True, check=False)
        subprocess.run([DOCKER, "rmi", IMAGE], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
