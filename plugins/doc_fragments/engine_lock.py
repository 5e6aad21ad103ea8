# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The lock every module that stops the engine or writes daemon.json holds for its whole run.
    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for the host's engine lock when another run of M(dockerhost.storage.data_root),
        M(dockerhost.storage.daemon_config), M(dockerhost.storage.image_archive) or
        M(dockerhost.storage.reclaim) holds it.
      - The lock is an exclusive C(flock) on C(/run/dockerhost-storage/engine.lock), held for
        the whole run, so that two runs never interleave (such as a rerun after the controller's
        connection dropped while the first run still works on the host). The kernel releases
        it when its holder exits, however it exits.
      - When the time is up the task fails, naming the process that holds the lock and what it
        is doing, and changes nothing.
      - Check mode changes nothing and takes no lock.
    type: int
    default: 120
  lock_token:
    description:
      - The token of a lease that this play holds with M(dockerhost.storage.engine_lock) (the
        V(provision) role takes one for its whole run). While a live lease holds the lock under
        this token, the task runs without waiting for it; other runs still wait.
    type: str
notes:
  - Runs of this module on one host are serialised with the other modules that stop the engine
    or write daemon.json, through the lock described under O(lock_timeout).
"""
