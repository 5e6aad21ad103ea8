# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine_lock module's application layer: make sure a lease holds the host's engine lock
under a play's token, or end it (``_engine_lock.hold_lease``, ``release_lease``).

``manage_lease`` is the whole module. A refusal raises StorageError (EngineLockError) with the
result to return beside the message.

Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

from ansible_collections.dockerhost.storage.plugins.module_utils._engine_lock import (
    EngineLockError,
    hold_lease,
    lease_holder,
    release_lease,
)


def check_options(params):
    """EngineLockError naming the first option that is wrong."""
    if not params["token"].strip():
        raise EngineLockError("token must not be empty: give every play a token of its own")
    if params["lease"] <= 0:
        raise EngineLockError(
            "lease must be a positive number of seconds, got %d" % params["lease"]
        )


def manage_lease(params, check_mode):
    """The engine_lock module for ``params`` (its options): ``{changed, holder_pid, lease}``.
    ``state: held`` starts a lease unless one holds the lock under the token already;
    ``state: released`` ends the token's lease when there is one. Check mode starts and ends
    none."""
    check_options(params)
    token = params["token"]
    result = {"changed": False, "holder_pid": lease_holder(token), "lease": params["lease"]}
    start = params["state"] == "held"
    if (result["holder_pid"] is not None) == start:
        return result  # a lease holds the lock under the token, or none does, as asked
    result["changed"] = True
    if check_mode:
        return result
    try:
        if start:
            result["holder_pid"] = hold_lease(
                token, params["purpose"], params["lease"], params["lock_timeout"]
            )[0]
        else:
            release_lease(token)
    except EngineLockError as exc:
        raise EngineLockError(str(exc), result) from None
    return result
