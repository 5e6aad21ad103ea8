"""execution-environment.yml builds, and the audit playbook runs from the image it makes.

The definition is built as shipped (copied with the collection tarball beside it, as
``ansible-galaxy collection build --output-path .build/dist`` leaves it) by
``ansible-builder build --container-runtime docker`` in the host dockerd, on a base image made
here: ``--build-arg EE_BASE_IMAGE=dockerhost-test/bookworm-offline`` (tests/support/
offline_debian.py: bookworm whose apt sources and pip index are local), with
``--network none``: no registry, no mirror, no PyPI. The Debian packages and wheels that image
holds are read from the build context ``ansible-builder create`` writes, so a package added to
the definition is one the test provides.

Then a container of the new image, as its default user, runs
``ansible-playbook dockerhost.storage.audit`` against a separate Debian container that has
sshd and no Docker, reached over SSH on a network of their own, and the report it writes says
what a host without Docker could run.

The host dockerd's layer cache keeps the base stage (apt, the pip install of ansible-core):
a warm build redoes only the stages from the collection on (docs/execution-environment.md has
the times).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
import offline_debian  # noqa: E402
from offline_debian import DOCKER  # noqa: E402

pytestmark = pytest.mark.integration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
DEFINITION = os.path.join(REPO_ROOT, "execution-environment.yml")
# Kept between runs, as the other test images are: the next build starts from its layers.
EE_IMAGE = "dockerhost-test/ee:latest"
# The user the image's definition leaves it running as (ansible-builder's default).
EE_USER = (1000, 0)
TEST_HOST = "ee-test-host"


def _run(argv, timeout=600, **kwargs):
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert completed.returncode == 0, "%s failed (exit %d):\n%s\n%s" % (
        " ".join(argv[:5]),
        completed.returncode,
        completed.stdout[-6000:],
        completed.stderr[-3000:],
    )
    return completed


def _builder_env(work):
    """ansible-builder runs ``docker`` from PATH: make it Debian's CLI, the engine's match,
    with BuildKit (a warm build with a changed collection: about 10 s, against 15 to 18 s with
    the classic builder; its cache also outlives the images)."""
    bin_dir = os.path.join(work, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    if not os.path.lexists(os.path.join(bin_dir, "docker")):
        os.symlink(DOCKER if os.path.isabs(DOCKER) else shutil.which(DOCKER), bin_dir + "/docker")
    return dict(
        os.environ,
        PATH=bin_dir + os.pathsep + VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        DOCKER_BUILDKIT="1",
    )


def build_needs(context):
    """The Debian packages and pip requirements the build in ``context`` installs: from its
    Dockerfile's ARGs and ``pip install`` steps, and its bindep.txt's dpkg entries."""
    with open(os.path.join(context, "Dockerfile"), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    args = {}
    wheels = []
    for line in lines:
        if line.startswith("ARG ") and "=" in line:
            name, value = line[4:].split("=", 1)
            args[name] = shlex.split(value)[0] if value else ""
    for line in lines:
        prefix = "RUN $PYCMD -m pip install --no-cache-dir "
        if line.startswith(prefix):
            words = line[len(prefix) :].replace(
                "$ANSIBLE_INSTALL_REFS", args["ANSIBLE_INSTALL_REFS"]
            )
            wheels += [word for word in shlex.split(words) if not word.startswith("-")]
    debs = args.get("PYPKG", "").split()
    with open(os.path.join(context, "_build", "bindep.txt"), encoding="utf-8") as handle:
        for entry in handle:
            entry = entry.split("#", 1)[0].strip()
            if entry and ("[" not in entry or "platform:dpkg" in entry):
                debs.append(entry.split()[0])
    return debs, wheels


@pytest.fixture(scope="module")
def ee_image(tmp_path_factory):
    """The image execution-environment.yml makes, built on the offline base image (the time
    the build took is printed: ``-rA`` shows it)."""
    work = str(tmp_path_factory.mktemp("ee"))
    env = _builder_env(work)
    project = os.path.join(work, "project")
    os.makedirs(project)
    shutil.copy2(DEFINITION, project)
    _run(
        [
            os.path.join(VENV_BIN, "ansible-galaxy"),
            "collection",
            "build",
            "--force",
            "--output-path",
            os.path.join(project, ".build", "dist"),
            REPO_ROOT,
        ],
        env=env,
    )
    definition = os.path.join(project, "execution-environment.yml")
    context = os.path.join(work, "context")
    builder = os.path.join(VENV_BIN, "ansible-builder")
    _run(
        [builder, "create", "-f", definition, "-c", context, "--output-filename", "Dockerfile"],
        env=env,
    )
    debs, wheels = build_needs(context)
    assert "openssh-client" in debs and any(w.startswith("ansible-core") for w in wheels), (
        debs,
        wheels,
    )
    base = offline_debian.offline_image(debs, wheels)

    previous = _image_id(EE_IMAGE)
    # A tag of this run's own: another checkout may retag EE_IMAGE meanwhile.
    run_tag = "dockerhost-test/ee:run-%s" % uuid.uuid4().hex[:12]
    started = time.monotonic()
    _run(
        [
            builder,
            "build",
            "-f",
            definition,
            "-c",
            context,
            "--container-runtime",
            "docker",
            "-t",
            EE_IMAGE,
            run_tag,
            "--build-arg",
            "EE_BASE_IMAGE=" + base,
            "--extra-build-cli-args=--network none",
            "-v",
            "2",
        ],
        env=env,
        timeout=1800,
    )
    elapsed = time.monotonic() - started
    print("ansible-builder build took %.1f s" % elapsed)
    try:
        yield run_tag
    finally:
        subprocess.run([DOCKER, "rmi", run_tag], capture_output=True, check=False)
        # The image of the run before, untagged now; refused while a tag or container holds it.
        if previous and previous != _image_id(EE_IMAGE):
            subprocess.run([DOCKER, "rmi", previous], capture_output=True, check=False)


def _image_id(name):
    return subprocess.run(
        [DOCKER, "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


@pytest.fixture
def ssh_test_host(tmp_path):
    """A Debian container with sshd and no Docker on an internal network of its own; yields
    ``(network, container name, directory with the client's key, owned by EE_USER)``."""
    suffix = uuid.uuid4().hex[:10]
    network = "dhs-ee-net-" + suffix
    host = "dhs-ee-host-" + suffix
    runner = tmp_path / "runner"
    runner.mkdir()
    os.chown(runner, *EE_USER)
    os.chmod(runner, 0o770)
    image = offline_debian.sshd_image(str(tmp_path))
    key = offline_debian.client_key(str(runner), owner=EE_USER)
    authorized = tmp_path / "authorized_keys"
    shutil.copy(key + ".pub", authorized)
    os.chmod(authorized, 0o600)
    try:
        _run([DOCKER, "network", "create", "--internal", network])
        _run(
            [
                DOCKER,
                "run",
                "-d",
                "--name",
                host,
                "--network",
                network,
                "-v",
                "%s:/root/.ssh/authorized_keys:ro" % authorized,
                image,
            ]
        )
        deadline = time.monotonic() + 30
        while (
            "Server listening"
            not in subprocess.run(
                [DOCKER, "logs", host], capture_output=True, text=True, check=False
            ).stderr
        ):
            assert time.monotonic() < deadline, "sshd did not start in %s" % host
            time.sleep(0.2)
        yield network, host, str(runner)
    finally:
        subprocess.run([DOCKER, "rm", "-f", host], capture_output=True, check=False)
        subprocess.run([DOCKER, "network", "rm", network], capture_output=True, check=False)


def test_the_audit_playbook_runs_from_the_execution_environment_over_ssh(ee_image, ssh_test_host):
    image = ee_image
    network, host, runner = ssh_test_host
    inventory = {
        "all": {
            "hosts": {
                TEST_HOST: {
                    "ansible_host": host,
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": "/runner/id_ed25519",
                    "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                    "-o UserKnownHostsFile=/dev/null",
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
            }
        }
    }
    with open(os.path.join(runner, "inventory.json"), "w", encoding="utf-8") as handle:
        json.dump(inventory, handle)
    name = "dhs-ee-run-" + uuid.uuid4().hex[:10]
    try:
        # As AWX starts it: the image's entrypoint and user, the project directory in /runner.
        completed = subprocess.run(
            [
                DOCKER,
                "run",
                "--rm",
                "--name",
                name,
                "--network",
                network,
                "-v",
                "%s:/runner" % runner,
                "-e",
                "ANSIBLE_NOCOLOR=1",
                image,
                "ansible-playbook",
                "dockerhost.storage.audit",
                "-i",
                "inventory.json",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        subprocess.run([DOCKER, "rm", "-f", name], capture_output=True, check=False)
    output = completed.stdout + completed.stderr
    upper_dir = _run(
        [DOCKER, "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", host]
    ).stdout.strip()
    assert completed.returncode == 0, output[-6000:]
    assert "%s : ok=" % TEST_HOST in " ".join(output.split()), output[-3000:]
    assert "unreachable=0 failed=0" in " ".join(output.split()), output[-3000:]
    # The reports are written where the play ran: in the execution environment's /runner.
    report_path = os.path.join(runner, "reports", "hosts", TEST_HOST + ".md")
    with open(report_path, encoding="utf-8") as handle:
        report = handle.read()
    assert report.startswith("# Docker storage audit: %s\n" % TEST_HOST), report[:500]
    # The modules ran on the test host: its root filesystem is this container's overlay.
    assert "upperdir=%s," % upper_dir in report, (upper_dir, report)
    # A root on overlay can hold no overlay2 data-root: only vfs would run there.
    assert "Docker is not installed; this host could run:\n- vfs\n" in report, report
    assert (
        "- overlay2: not supported\n"
        "  - why not: overlay cannot use a overlay filesystem as its upper layer\n" in report
    ), report
    assert "dockerd is not installed" in report, report
    assert "judged for Docker Engine 29.0" in report, report
    with open(os.path.join(runner, "reports", "fleet.json"), encoding="utf-8") as handle:
        fleet = json.load(handle)
    print(json.dumps(fleet["summary"]))
