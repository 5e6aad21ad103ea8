"""Fixtures for the integration tier: real filesystems, overlay mounts, private dockerds and the
locally built images, each torn down after the test even when it fails.

Every test here is marked ``integration`` (added automatically when a module forgets) and needs
root: without it the tests are skipped, or fail under CI (CI=true). docs/testing.md has the
details.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)

from harness import (  # noqa: E402  (the path above makes the package importable)
    BOOKWORM_PYTHON,
    BUSYBOX,
    DockerdFactory,
    LocalImage,
    LoopfsFactory,
    OverlayFactory,
    PrivateDockerd,
    crowded_store,  # noqa: E402
    import_image,
)
from harness.engine_root import FORKY, TRIXIE, EngineRoot, EngineRootSource, unpack  # noqa: E402
from prerequisites import skip_or_fail  # noqa: E402

INTEGRATION_DIR = os.path.dirname(os.path.abspath(__file__))
_DOCKERDS = pytest.StashKey[DockerdFactory]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: runs for real on this host (root, loop devices, dockerd)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(INTEGRATION_DIR + os.sep):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """On a failed test, show the tail of each private dockerd's log under the report."""
    report = yield
    factory = item.stash.get(_DOCKERDS, None)
    if report.when == "call" and report.failed and factory is not None:
        for daemon in factory.created:
            report.sections.append(
                ("dockerd %s (%s)" % (daemon.socket, daemon.log_path), daemon.log_tail(25))
            )
    return report


@pytest.fixture(scope="session", autouse=True)
def _needs_root() -> None:
    # Session scope: it must run before any module-scoped filesystem fixture.
    if os.geteuid() != 0:
        skip_or_fail("integration tests need root (loop devices, mounts, dockerd)")


def _loopfs_factory(tmp_path_factory: pytest.TempPathFactory):
    factory = LoopfsFactory(tmp_path_factory.mktemp("loopfs"))
    yield factory
    factory.destroy_all()


@pytest.fixture
def make_loopfs(tmp_path_factory: pytest.TempPathFactory):
    """``make_loopfs(fstype, size_mb=None, inodes=None, features=None, mkfs_args=(),
    mount_options=())`` -> LoopFilesystem (mount_point, device, fstype, image_path, ...).

    ext4, ext2, xfs, btrfs on a loop device, or tmpfs. Each result is also a context manager
    that tears it down at the end of the ``with`` block; the rest go after the test.
    """
    yield from _loopfs_factory(tmp_path_factory)


@pytest.fixture(scope="module")
def make_loopfs_module(tmp_path_factory: pytest.TempPathFactory):
    """make_loopfs for module-scoped fixtures: torn down after the test module."""
    yield from _loopfs_factory(tmp_path_factory)


def _overlay_factory():
    factory = OverlayFactory()
    yield factory
    factory.unmount_all()


@pytest.fixture
def make_overlay():
    """``make_overlay(base_dir, lowers=2)`` -> OverlayMount (lowers [topmost first], upper,
    work, merged, options); unmounted after the test, or at the end of a ``with`` block."""
    yield from _overlay_factory()


@pytest.fixture(scope="module")
def make_overlay_module():
    """make_overlay for module-scoped fixtures: unmounted after the test module."""
    yield from _overlay_factory()


@pytest.fixture
def start_dockerd(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """``start_dockerd(data_root, storage_driver=None, extra_args=(), config_file=None,
    timeout=30, engine=None, binds=())`` -> PrivateDockerd, started or refused (``.started``,
    ``.refusal``). ``engine``: an EngineRoot (``forky_engine``) to run that release's dockerd
    instead of the host's; ``binds``: more host directories it must see.

    Each daemon has its own data-root, exec-root, socket and network namespace, and is stopped
    after the test (mounts it left under its data-root and exec-root included).
    """
    factory = DockerdFactory(log_dir=tmp_path_factory.mktemp("dockerd-logs"))
    request.node.stash[_DOCKERDS] = factory
    yield factory
    factory.stop_all()


def _cached_image(image: LocalImage) -> LocalImage:
    if not image.is_cached():
        skip_or_fail(image.missing_message())
    return image


@pytest.fixture(scope="session")
def busybox_image() -> LocalImage:
    """The busybox image (``.name``, ``.tarball``); skip or fail when it is not built."""
    return _cached_image(BUSYBOX)


@pytest.fixture(scope="session")
def bookworm_python_image() -> LocalImage:
    """The Debian bookworm + python3 image; skip or fail when it is not built."""
    return _cached_image(BOOKWORM_PYTHON)


def _engine_root(source: EngineRootSource) -> EngineRoot:
    try:
        return unpack(source)
    except FileNotFoundError as error:
        skip_or_fail(str(error))
        raise


@pytest.fixture(scope="session")
def forky_engine() -> EngineRoot:
    """forky's docker.io 28.5 and containerd 2.1, unpacked from the molecule image's rootfs, to
    run chrooted: ``start_dockerd(..., engine=forky_engine)``. Skip or fail when not built."""
    return _engine_root(FORKY)


@pytest.fixture(scope="session")
def trixie_engine() -> EngineRoot:
    """trixie's docker.io 26.1, from the molecule image with the engine installed."""
    return _engine_root(TRIXIE)


@pytest.fixture
def import_test_image():
    """``import_test_image(daemon, image)``: import a cached image into a private dockerd."""
    return import_image


@pytest.fixture
def busybox_dockerd(make_loopfs, start_dockerd, busybox_image) -> PrivateDockerd:
    """A running private dockerd with overlay2 on a fresh ext4 filesystem (data-root
    ``<mount>/docker``), with the busybox image imported."""
    fs = make_loopfs("ext4", size_mb=512)
    daemon = start_dockerd(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
    daemon.assert_started()
    import_image(daemon, busybox_image)
    return daemon


@pytest.fixture(scope="module")
def start_dockerd_module(tmp_path_factory: pytest.TempPathFactory):
    """start_dockerd for module-scoped fixtures: every daemon is stopped after the test module.

    A failing test's report does not show these daemons' logs; their log files stay under the
    test's base temporary directory (``dockerd-logs*``).
    """
    factory = DockerdFactory(log_dir=tmp_path_factory.mktemp("dockerd-logs"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def busybox_dockerd_module(
    make_loopfs_module, start_dockerd_module, busybox_image
) -> PrivateDockerd:
    """busybox_dockerd shared by a whole test module (for tests that need many containers)."""
    fs = make_loopfs_module("ext4", size_mb=512)
    daemon = start_dockerd_module(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
    daemon.assert_started()
    import_image(daemon, busybox_image)
    return daemon


@pytest.fixture
def crowded_dockerd(make_loopfs, start_dockerd, busybox_image, tmp_path):
    """``(daemon, fs, made)``: a private dockerd alone on a 256 MB ext4 of 6,000 inodes, filled
    to 97% of them by ``harness.crowded_store.fill`` (``made``: the ids it made, by role)."""
    fs = make_loopfs("ext4", size_mb=256, mkfs_args=("-N", "6000"))
    daemon = start_dockerd(os.path.join(fs.mount_point, "docker"), storage_driver="overlay2")
    daemon.assert_started()
    import_image(daemon, busybox_image)
    made = crowded_store.fill(daemon, busybox_image.name, 97.0, str(tmp_path))
    return daemon, fs, made
