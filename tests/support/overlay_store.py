"""Build small overlay2 layer stores on disk, laid out as dockerd 20.10 lays them out.

Used by unit tests (in tmp_path) to check the store and container checks against real
directories and links.
"""

import os


def short_name(layer_id):
    """A 26-character short name for a layer, like dockerd's random ones, but stable."""
    return (layer_id.upper().replace("-", "") + "X" * 26)[:26]


def make_store(data_root, images=(), containers=()):
    """Create ``<data_root>/overlay2`` and ``image/overlay2/layerdb``.

    ``images``: a chain of image layer ids, bottom first (each gets a layerdb cache-id).
    ``containers``: ``(container_id, layer_id)`` pairs; each gets ``<layer>`` and
    ``<layer>-init`` on top of the whole image chain, and a layerdb mounts entry.
    Returns the overlay2 home.
    """
    home = os.path.join(data_root, "overlay2")
    os.makedirs(os.path.join(home, "l"), exist_ok=True)
    layerdb = os.path.join(data_root, "image", "overlay2", "layerdb")

    def add_layer(layer_id, below):
        base = os.path.join(home, layer_id)
        os.makedirs(os.path.join(base, "diff"))
        os.makedirs(os.path.join(base, "work"))
        with open(os.path.join(base, "link"), "w") as handle:
            handle.write(short_name(layer_id))
        os.symlink("../%s/diff" % layer_id, os.path.join(home, "l", short_name(layer_id)))
        if below:
            with open(os.path.join(base, "lower"), "w") as handle:
                handle.write(":".join("l/" + short_name(b) for b in below))

    chain = []
    for index, layer_id in enumerate(images):
        add_layer(layer_id, list(reversed(chain)))
        chain.append(layer_id)
        with open(
            os.path.join(base_file(layerdb, "sha256", "chain%d" % index), "cache-id"), "w"
        ) as h:
            h.write(layer_id)
    image_lowers = list(reversed(chain))
    for container_id, layer_id in containers:
        add_layer(layer_id + "-init", image_lowers)
        add_layer(layer_id, [layer_id + "-init"] + image_lowers)
        os.makedirs(os.path.join(home, layer_id, "merged"))
        mounts = base_file(layerdb, "mounts", container_id)
        for name, value in (("mount-id", layer_id), ("init-id", layer_id + "-init")):
            with open(os.path.join(mounts, name), "w") as handle:
                handle.write(value)
    return home


def base_file(*parts):
    path = os.path.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path


def graph_data(home, layer_id, images):
    """GraphDriver.Data as the engine reports it for a container layer ``layer_id``."""
    lowers = [layer_id + "-init"] + list(reversed(images))
    return {
        "LowerDir": ":".join(os.path.join(home, lower, "diff") for lower in lowers),
        "UpperDir": os.path.join(home, layer_id, "diff"),
        "WorkDir": os.path.join(home, layer_id, "work"),
        "MergedDir": os.path.join(home, layer_id, "merged"),
    }
