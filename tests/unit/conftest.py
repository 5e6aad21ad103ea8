"""Make ``ansible_collections.dockerhost.storage`` importable from a plain checkout.

ansible-test runs unit tests from an ``ansible_collections/dockerhost/storage`` tree already;
plain ``pytest`` from a clone gets the same import path through a link in ``.build/``.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _ensure_collection_import_path():
    parts = REPO_ROOT.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "ansible_collections":
        root = os.sep.join(parts[:-3])
    else:
        root = os.path.join(REPO_ROOT, ".build", "pytest")
        link_parent = os.path.join(root, "ansible_collections", "dockerhost")
        link = os.path.join(link_parent, "storage")
        os.makedirs(link_parent, exist_ok=True)
        if not os.path.islink(link):
            os.symlink(REPO_ROOT, link)
    if root not in sys.path:
        sys.path.insert(0, root)


_ensure_collection_import_path()
# Helpers shared by the unit and integration tiers (recorded Engine API answers).
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
