# Copyright: dockerhost.storage maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""User namespace remapping (dockerd's ``userns-remap``) as the storage sees it.

With ``userns-remap`` set, dockerd keeps everything it stores (layers, image metadata,
containers, volumes, its own containerd's root) in ``<data-root>/<uid>.<gid>``, the remapped
root: ``uid`` and ``gid`` are the lowest starts of the remapped user's ranges in /etc/subuid
and /etc/subgid (``default`` is the user and group ``dockremap``, which dockerd creates). The
data-root itself then holds that directory only (and whatever an earlier, unremapped engine
left there). dockerd refuses to start when the remapped root cannot reach its directory: every
existing directory from the data-root up to / must let the remapped uid or gid through (o+x
in practice).

Pure functions over files under a ``host_root`` prefix, and one that stats the data-root's
ancestors. Private to the dockerhost.storage collection: the API may change without notice.
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.dockerhost.storage.plugins.module_utils._mountinfo import host_path

DEFAULT_USER = "dockremap"
# The name of the remapped root below the data-root: "<uid>.<gid>".
REMAPPED_ROOT_NAME = re.compile(r"^([0-9]+)\.([0-9]+)$")


def split_setting(value):
    """``(user, group)`` of a ``userns-remap`` value: ``default`` is dockremap:dockremap, a
    user alone brings the group of the same name, as in dockerd."""
    value = str(value).strip()
    if value == "default":
        return DEFAULT_USER, DEFAULT_USER
    user, _colon, group = value.partition(":")
    return user, group or user


def _database(host_root, name):
    """``{name: id}`` and ``{id: name}`` of /etc/passwd or /etc/group under ``host_root``."""
    by_name, by_id = {}, {}
    try:
        with open(host_path(host_root, name), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 3 and fields[2].isdigit():
                    by_name.setdefault(fields[0], int(fields[2]))
                    by_id.setdefault(int(fields[2]), fields[0])
    except OSError:
        pass
    return by_name, by_id


def lowest_range_start(host_root, subid_file, name, number=None):
    """The lowest start of the ranges ``name`` (or its id ``number``) has in ``subid_file``
    (/etc/subuid or /etc/subgid under ``host_root``), or None. dockerd sorts the ranges and
    maps the container's root to the lowest start."""
    starts = []
    try:
        with open(host_path(host_root, subid_file), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.strip().split(":")
                if len(fields) != 3 or not (fields[1].isdigit() and fields[2].isdigit()):
                    continue
                if fields[0] == name or (number is not None and fields[0] == str(number)):
                    starts.append(int(fields[1]))
    except OSError:
        return None
    return min(starts) if starts else None


def remapped_ids(setting, host_root="/"):
    """``(user, group, uid, gid, problem)``: the remapped root's host uid and gid for a
    ``userns-remap`` value, from /etc/passwd, /etc/group, /etc/subuid and /etc/subgid under
    ``host_root``. ``uid``/``gid`` are None and ``problem`` says why when they are not there
    (dockerd creates dockremap and its ranges itself on its first start with ``default``)."""
    user, group = split_setting(setting)
    users, user_names = _database(host_root, "/etc/passwd")
    groups, group_names = _database(host_root, "/etc/group")
    # A number names the user (group) of that id, as dockerd reads it.
    if user.isdigit():
        user = user_names.get(int(user), user)
    if group.isdigit():
        group = group_names.get(int(group), group)
    uid = lowest_range_start(host_root, "/etc/subuid", user, users.get(user))
    gid = lowest_range_start(host_root, "/etc/subgid", group, groups.get(group))
    problem = None
    if uid is None or gid is None:
        missing = [
            "%s has no range in /etc/%s" % (who, name)
            for who, name, value in (
                ("user " + user, "subuid", uid),
                ("group " + group, "subgid", gid),
            )
            if value is None
        ]
        problem = "%s; the remapped root is not known until it has%s" % (
            "; ".join(missing),
            " (dockerd adds them for dockremap on its next start)"
            if setting == "default"
            else ": add them (usermod --add-subuids/--add-subgids)",
        )
    return user, group, uid, gid, problem


def split_remapped_root(docker_root_dir):
    """``(data_root, "<uid>.<gid>")`` of the engine's DockerRootDir under userns-remap, or
    ``(docker_root_dir, None)`` when its last component is not ``<uid>.<gid>``."""
    path = os.path.normpath(docker_root_dir)
    if REMAPPED_ROOT_NAME.match(os.path.basename(path)):
        return os.path.dirname(path), os.path.basename(path)
    return path, None


def blocking_directory(data_root, uid, gid, stat_path=os.stat):
    """The first existing directory from ``data_root`` up to (not including) / that the remapped
    ``uid``:``gid`` cannot traverse, as dockerd checks it before it starts, or None.

    A directory lets it through when its owner is ``uid`` with u+x, its group ``gid`` with g+x,
    or others have o+x. Directories that do not exist yet are left out (dockerd makes them).
    Symbolic links are followed, as the kernel follows them on the way.
    """
    path = os.path.normpath(data_root)
    while path != "/":
        try:
            st = stat_path(path)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            if st.st_uid == uid:
                allowed = st.st_mode & stat.S_IXUSR
            elif st.st_gid == gid:
                allowed = st.st_mode & stat.S_IXGRP
            else:
                allowed = st.st_mode & stat.S_IXOTH
            if not allowed:
                return path
        path = os.path.dirname(path)
    return None


def configured_setting(settings, flag_findings, config_path):
    """``(value, where)`` of the ``userns-remap`` setting dockerd reads: a flag (the last one)
    or daemon.json; ``(None, None)`` when neither sets it."""
    flags = [f for f in flag_findings if f["key"] == "userns-remap"]
    if flags:
        flag = flags[-1]
        return flag["value"], "%s %s in %s" % (flag["flag"], flag["value"], flag["where"])
    if settings.get("userns_remap"):
        return settings["userns_remap"], "daemon.json %s" % config_path
    return None, None


def userns_remap_fact(engine_info, data_root, settings, flag_findings, config_path, host_root="/"):
    """What ``storage_facts`` says about user namespace remapping.

    ``enabled``: in force on the running engine (its /info lists ``name=userns``), else as
    configured; ``setting`` and ``configured_in``: the value and where it is set;
    ``remapped_root``: ``<data-root>/<uid>.<gid>``, where the engine keeps its storage
    (``remapped_root_source``: ``engine`` or ``subuid``); ``blocked_by``: a directory the
    remapped root cannot traverse (dockerd refuses to start); ``problem``: why the remapped
    root is not known.
    """
    setting, where = configured_setting(settings, flag_findings, config_path)
    engine_says = (
        engine_info.get("userns_remap") if engine_info["version_source"] == "api" else None
    )
    fact = {
        "enabled": bool(setting) if engine_says is None else engine_says,
        "engine": engine_says,
        "setting": setting,
        "configured_in": where,
        "user": None,
        "group": None,
        "uid": None,
        "gid": None,
        "remapped_root": None,
        "remapped_root_source": None,
        "blocked_by": None,
        "problem": None,
    }
    if not fact["enabled"] and not setting:
        return fact
    if setting:
        fact["user"], fact["group"], uid, gid, problem = remapped_ids(setting, host_root)
        fact.update(uid=uid, gid=gid, problem=problem)
    name = engine_info.get("remapped_root") if engine_says else None
    if name:
        # The running engine's own answer wins over the files.
        uid, gid = (int(part) for part in name.split("."))
        fact.update(uid=uid, gid=gid, problem=None, remapped_root_source="engine")
    elif fact["uid"] is not None and fact["gid"] is not None:
        name = "%s.%s" % (fact["uid"], fact["gid"])
        fact["remapped_root_source"] = "subuid"
    if name:
        fact["remapped_root"] = os.path.join(data_root, name)
        fact["blocked_by"] = blocking_directory(data_root, fact["uid"], fact["gid"])
    return fact


def remapped_root_name(engine_info, settings, host_root="/"):
    """``"<uid>.<gid>"`` of the remapped root in use, or None: the running engine's own answer,
    else the ``userns-remap`` of daemon.json (``settings``) read against /etc/subuid and
    /etc/subgid."""
    if engine_info["version_source"] == "api":
        return engine_info.get("remapped_root")
    if not settings.get("userns_remap"):
        return None
    _user, _group, uid, gid, _problem = remapped_ids(settings["userns_remap"], host_root)
    return None if uid is None or gid is None else "%s.%s" % (uid, gid)


def store_root(data_root, remap_fact):
    """Where the engine keeps its layers, images and containers: the remapped root when user
    namespace remapping is on and its root is known, else the data-root."""
    return (remap_fact or {}).get("remapped_root") or data_root
