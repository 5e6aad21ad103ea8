# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options several modules share, declared once.

Each is merged into the argument spec of the modules that take it (``argument_spec``) and
documented once, in ``plugins/doc_fragments/engine.py`` (``docker_host``, ``config_path``,
``margin_percent``) and
``plugins/doc_fragments/engine_lock.py`` (``lock_timeout``, ``lock_token``).

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

from ansible_collections.dockerhost.storage.plugins.module_utils._capacity import (
    DEFAULT_MARGIN_PERCENT,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._daemon_json import (
    DEFAULT_DAEMON_JSON,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._engine_api import (
    DEFAULT_DOCKER_HOST,
)

DOCKER_HOST = {"docker_host": {"type": "str", "default": DEFAULT_DOCKER_HOST}}
CONFIG_PATH = {"config_path": {"type": "path", "default": DEFAULT_DAEMON_JSON}}
# Room to keep on the filesystem a data-root moves to (capacity_info's target, data_root's path).
MARGIN = {"margin_percent": {"type": "float", "default": DEFAULT_MARGIN_PERCENT}}
ENGINE_LOCK = {
    "lock_timeout": {"type": "int", "default": 120},
    "lock_token": {"type": "str", "no_log": False},
}


def argument_spec(own, *shared):
    """A module's argument spec: its ``own`` options and the ``shared`` groups above. An option
    declared twice is a programming error, raised as ValueError."""
    spec = {}
    for group in (own,) + shared:
        for name, settings in group.items():
            if name in spec:
                raise ValueError("option %s is declared twice" % name)
            spec[name] = dict(settings)
    return spec
