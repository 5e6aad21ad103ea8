#!/usr/bin/python
# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: engine_lock
short_description: Hold the host's engine lock for a whole play, across its tasks
version_added: 0.1.0
description:
  - M(dockerhost.storage.data_root), M(dockerhost.storage.daemon_config),
    M(dockerhost.storage.image_archive) and M(dockerhost.storage.reclaim) each hold the host's
    engine lock (an exclusive C(flock)
    on C(/run/dockerhost-storage/engine.lock)) while they run. A play that stops and starts the
    engine between such tasks (a restart handler, a roll-back) needs the lock across all of
    them, or another run could interleave.
  - O(state=held) starts a process on the host that takes the lock under O(token) and holds it
    until O(state=released), or for at most O(lease) seconds (when the play never gets to
    release it, after a dropped connection or a killed controller). The kernel drops the lock when
    that process ends, however it ends.
  - Tasks of this play pass the same token as O(dockerhost.storage.data_root#module:lock_token)
    and run without waiting; every other run waits for the lease to end.
  - The V(provision) role holds such a lease for its whole run.
author:
  - dockerhost.storage maintainers (!UNKNOWN)
options:
  state:
    description:
      - V(held) makes sure a lease holds the lock under O(token); V(released) ends it.
    type: str
    choices: [held, released]
    default: held
  token:
    description:
      - An identifier of this play's lease, the same for every task of the play, different
        between plays (for example a random string set once with M(ansible.builtin.set_fact)).
    type: str
    required: true
  purpose:
    description:
      - What the play does; another run that finds the lock held names it in its message.
    type: str
    default: a play that stops the engine or writes daemon.json
  lease:
    description:
      - The longest the lease holds the lock, in seconds, when it is not released; a task of
        the play that runs under the lease when the time is up keeps it until that task ends.
    type: int
    default: 3600
  lock_timeout:
    description:
      - Seconds to wait for the lock when another run holds it; then the task fails, naming the
        holder's process id and what it is doing.
    type: int
    default: 120
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports whether a lease would be started or ended; starts and ends none.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Needs root, as the modules that take the lock.
seealso:
  - module: dockerhost.storage.data_root
"""

EXAMPLES = r"""
- name: Make this play's lease token once
  ansible.builtin.set_fact:
    storage_lock_token: "{{ lookup('ansible.builtin.password', '/dev/null', length=32, chars=['ascii_lowercase', 'digits']) }}"

- name: Hold the engine lock while the play changes the engine
  dockerhost.storage.engine_lock:
    token: "{{ storage_lock_token }}"
    purpose: moving /var/lib/docker to /srv/docker

- name: Move the data-root under the play's lease
  dockerhost.storage.data_root:
    path: /srv/docker
    lock_token: "{{ storage_lock_token }}"

- name: Release the engine lock
  dockerhost.storage.engine_lock:
    state: released
    token: "{{ storage_lock_token }}"
"""

RETURN = r"""
holder_pid:
  description:
    - The process id of the lease (V(held)), or of the lease that was ended (V(released)); null
      when there is none, or in check mode when one would be started.
  returned: always
  type: int
  sample: 4242
lease:
  description: The longest the lease holds the lock, in seconds.
  returned: always
  type: int
  sample: 3600
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock_lease import (
    manage_lease,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._errors import StorageError


def argument_spec():
    return dict(
        state=dict(type="str", choices=["held", "released"], default="held"),
        token=dict(type="str", required=True, no_log=False),
        purpose=dict(type="str", default="a play that stops the engine or writes daemon.json"),
        lease=dict(type="int", default=3600),
        lock_timeout=dict(type="int", default=120),
    )


def run(module):
    try:
        result = manage_lease(module.params, module.check_mode)
    except StorageError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module)


if __name__ == "__main__":
    main()
