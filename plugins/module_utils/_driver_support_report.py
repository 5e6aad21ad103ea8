# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The driver_support_info report: every storage driver judged for the data-root in force, on
the engine in force, and the driver the task requires.

``collect`` is the whole module; it reads the engine, daemon.json, the kernel and the data-root's
filesystem, and mounts overlay only in a probe directory it removes. The rules are in
``_drivers``, the evidence and the report's shape in ``_support``.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

from ansible_collections.dockerhost.storage.plugins.module_utils import _drivers, _support
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_state import (
    engine_in_force,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


class DriverNotSupported(StorageError):
    """The driver of the ``required`` option cannot run (or may not) on the data-root."""


def check_required(required, result, engine):
    """DriverNotSupported naming the driver, the data-root, its filesystem, the engine and the
    reasons when ``required`` is set and not supported for sure in ``result``."""
    if not required or result["drivers"][required]["supported"] is True:
        return
    why = "; ".join(result["drivers"][required]["reasons"]) or "support could not be determined"
    raise DriverNotSupported(
        "%s cannot run on %s (%s, Docker Engine %s): %s"
        % (
            required,
            result["path"],
            result["backing_filesystem"]["type"],
            _drivers.format_version(engine),
            why,
        ),
        result,
    )


def collect(params, state=None):
    """``(result, warnings)`` of driver_support_info for ``params`` (the module options).

    ``state`` is the EngineInForce (``_engine_state.engine_in_force``) a caller found already;
    it is found here from ``docker_host``, ``config_path``, ``path`` and ``engine_version``
    when None. Raises StorageError naming the option or path, or DriverNotSupported (with the
    result) when the ``required`` driver cannot run."""
    if state is None:
        state = engine_in_force(
            params["docker_host"], params["config_path"], params["path"], params["engine_version"]
        )
    result = _support.driver_support_result(
        state.data_root,
        state.data_root_source,
        state.engine_info,
        state.engine,
        state.settings,
        params["probe"],
    )
    check_required(params["required"], result, state.engine)
    warnings = list(state.warnings)
    if result["overlay_probe"]["cleanup_error"]:
        warnings.append(result["overlay_probe"]["cleanup_error"])
    return result, warnings
