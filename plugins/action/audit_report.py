# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``dockerhost.storage.audit_report`` action: the fleet report of an audit, made and
written on the controller from the play's hostvars (documented in plugins/modules/)."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.dockerhost.storage.plugins.plugin_utils import _audit_report


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, params = self.validate_argument_spec(
            argument_spec=_audit_report.ARGUMENT_SPEC,
            mutually_exclusive=_audit_report.MUTUALLY_EXCLUSIVE,
            required_one_of=_audit_report.REQUIRED_ONE_OF,
        )
        try:
            if params["hosts"] is not None:
                items = _audit_report.results_from_hostvars(
                    params["hosts"], task_vars.get("hostvars", {}), params["result_var"]
                )
            else:
                items = _audit_report.plain(params["results"], "results")
            result.update(
                _audit_report.write_reports(
                    params, items, check_mode=self._task.check_mode, diff=self._task.diff
                )
            )
        except _audit_report.ReportError as exc:
            result.update(failed=True, msg=str(exc))
        return result
