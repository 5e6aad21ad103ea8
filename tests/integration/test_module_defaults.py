"""The action group: ``module_defaults`` with ``group/dockerhost.storage.engine`` gives every
module that asks the engine its socket, in a real playbook against a private dockerd."""

import json

import pytest
from ansible_module import run_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/dockerhost.storage.engine:
      docker_host: "unix://%(socket)s"
  tasks:
    - name: Judge the drivers
      dockerhost.storage.driver_support_info:
        probe: false
      register: support
    - name: Look at the mounts
      dockerhost.storage.mounts_info:
      register: mounts
    - name: Look at the capacity
      dockerhost.storage.capacity_info:
      register: capacity
    - name: Report
      ansible.builtin.debug:
        msg: "{{ {'support': support.engine, 'support_path': support.path,
                  'mounts': mounts.data_root, 'capacity': capacity.data_root,
                  'capacity_source': capacity.data_root_source} | to_json }}"
"""


def test_one_group_default_reaches_every_module_of_the_group(busybox_dockerd, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK % {"socket": busybox_dockerd.socket})
    tasks = run_playbook(playbook)["plays"][0]["tasks"]
    report = json.loads(tasks[-1]["hosts"]["localhost"]["msg"])
    # The private dockerd answered, not the host's: its data-root is the loop filesystem's.
    assert report["support"]["version_source"] == "api"
    assert report["support_path"] == busybox_dockerd.data_root
    assert report["capacity"] == busybox_dockerd.data_root
    assert report["capacity_source"] == "engine"
    assert report["mounts"] == busybox_dockerd.data_root
