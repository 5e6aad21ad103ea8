"""Import paths for the unit tier: the collection as ``ansible_collections.dockerhost.storage``
and the helpers in tests/support."""

import os
import sys

SUPPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
sys.path.insert(0, SUPPORT)

from collection_path import collections_root  # noqa: E402

if collections_root() not in sys.path:
    sys.path.insert(0, collections_root())
