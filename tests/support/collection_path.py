"""Make ``ansible_collections.dockerhost.storage`` resolve to this checkout.

ansible-test runs from an ``ansible_collections/dockerhost/storage`` tree already; a plain clone
gets the same layout through a link in ``.build/pytest``.
"""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collections_root():
    """The directory that holds ``ansible_collections/dockerhost/storage`` for this checkout."""
    parts = REPO_ROOT.split(os.sep)
    if len(parts) >= 3 and parts[-3] == "ansible_collections":
        return os.sep.join(parts[:-3])
    root = os.path.join(REPO_ROOT, ".build", "pytest")
    link_parent = os.path.join(root, "ansible_collections", "dockerhost")
    link = os.path.join(link_parent, "storage")
    os.makedirs(link_parent, exist_ok=True)
    if not os.path.islink(link):
        os.symlink(REPO_ROOT, link)
    return root
