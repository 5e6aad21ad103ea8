"""A private dockerd that takes its data-root from its configuration file.

PrivateDockerd always passes --data-root; with data-root also in the file, dockerd would refuse
to start (a directive given both as a flag and in the file). To show that dockerd really uses
the data-root a daemon.json names, this variant drops the flag and keeps everything else.
"""

from __future__ import annotations

import os

from .dockerd import START_TIMEOUT, DockerdFactory, PrivateDockerd
from .engine_root import EngineRoot


def start_dockerd_with_config_data_root(
    factory: DockerdFactory,
    config_file: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    extra_args: tuple[str, ...] = (),
    timeout: float = START_TIMEOUT,
    engine: EngineRoot | None = None,
) -> PrivateDockerd:
    """Start a private dockerd on ``config_file`` without --data-root; ``data_root`` must be
    the one the file names (it is where the daemon's mounts are cleaned up). The daemon is
    stopped with the factory's others."""
    daemon = PrivateDockerd(
        data_root,
        extra_args=extra_args,
        config_file=config_file,
        log_dir=factory.log_dir,
        engine=engine,
    )
    daemon.argv = [word for word in daemon.argv if not word.startswith("--data-root=")]
    factory.created.append(daemon)
    daemon.start(timeout=timeout)
    return daemon
