# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # A read-only module: check mode runs it whole, there is nothing to diff. With
    # ansible.builtin.action_common_attributes, which describes the attributes.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

    # A read-only module that returns ansible_facts. With
    # ansible.builtin.action_common_attributes.facts, which describes the attribute.
    FACTS = r"""
attributes:
  facts:
    support: full
"""
