"""Setting containerd's root in its config.toml: every other byte stays, or nothing is written."""

import os

import pytest

from ansible_collections.dockerhost.storage.plugins.module_utils._capacity import (
    parse_containerd_root,
)
from ansible_collections.dockerhost.storage.plugins.module_utils._containerd import (
    ContainerdError,
    ContainerdRootSwitch,
    config_with_root,
    foreign_namespaces,
    holds_root,
    paths_under,
)

# Debian forky's /etc/containerd/config.toml, as the package ships it.
DEBIAN = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""


def test_a_root_is_added_at_the_end_of_the_top_level_keys():
    edited = config_with_root(DEBIAN, "/srv/containerd")
    assert edited == DEBIAN.replace("version = 2\n", 'version = 2\nroot = "/srv/containerd"\n', 1)
    assert parse_containerd_root(edited) == "/srv/containerd"


def test_an_existing_root_line_keeps_its_spacing_comment_and_line_ending():
    text = '# moved by hand\r\n  root   =  \'/data/containerd\'   # big disk\r\nstate = "/run/containerd"\r\n[grpc]\r\n  root = "not/this/one"\r\n'
    edited = config_with_root(text, "/srv/c")
    assert edited == text.replace("'/data/containerd'", '"/srv/c"')
    assert parse_containerd_root(edited) == "/srv/c"


def test_no_file_gets_a_minimal_one():
    assert config_with_root(None, "/srv/c") == 'version = 2\nroot = "/srv/c"\n'


def test_a_file_without_a_final_newline_and_only_top_level_keys():
    assert config_with_root("version = 2", "/srv/c") == 'version = 2\nroot = "/srv/c"\n'


def test_quotes_and_backslashes_are_escaped_and_read_back():
    edited = config_with_root(DEBIAN, '/srv/odd "name" \\ dir')
    assert parse_containerd_root(edited) == '/srv/odd "name" \\ dir'


@pytest.mark.parametrize(
    "text, phrase",
    [
        ('imports = ["/etc/containerd/conf.d/*.toml"]\n', "imports other files (line 1)"),
        ('root = "/a"\nroot = "/b"\n', "sets root more than once (lines 1, 2)"),
        ("root = [1]\n", "line 1 sets root to [1], not a one-line string"),
        ('note = """\nroot = "/x"\n"""\n', "line 1 has a multi-line string"),
    ],
)
def test_what_cannot_be_edited_safely_is_refused_naming_the_file(text, phrase):
    with pytest.raises(ContainerdError) as refused:
        config_with_root(text, "/srv/c", "/etc/containerd/config.toml")
    assert str(refused.value).startswith("/etc/containerd/config.toml ")
    assert phrase in str(refused.value)


def test_a_control_character_in_the_path_is_refused():
    with pytest.raises(ContainerdError, match="control character"):
        config_with_root(DEBIAN, "/srv/c\nroot = '/etc'")


def test_the_switch_writes_and_restores_byte_for_byte(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(DEBIAN)
    path.chmod(0o600)
    switch = ContainerdRootSwitch(str(path))
    previous = switch.switch("/srv/containerd")
    assert previous == DEBIAN
    assert parse_containerd_root(path.read_text()) == "/srv/containerd"
    assert path.stat().st_mode & 0o777 == 0o600
    switch.restore(previous)
    assert path.read_text() == DEBIAN
    missing = ContainerdRootSwitch(str(tmp_path / "etc" / "containerd" / "config.toml"))
    assert missing.switch("/srv/c") is None
    missing.restore(None)
    assert not (tmp_path / "etc" / "containerd" / "config.toml").exists()


def test_namespaces_of_other_clients_are_named():
    assert foreign_namespaces(["default", "k8s.io", "moby", "plugins.moby"]) == [
        "default",
        "k8s.io",
    ]
    assert foreign_namespaces(["moby"]) == []


def test_holds_root_compares_the_open_files_of_containerd_by_identity(tmp_path):
    new, old = tmp_path / "srv" / "c", tmp_path / "var" / "lib" / "containerd"
    for root in (new, old):
        (root / "io.containerd.metadata.v1.bolt").mkdir(parents=True)
        (root / "io.containerd.metadata.v1.bolt" / "meta.db").write_bytes(b"")
    proc = tmp_path / "proc"
    (proc / "41" / "fd").mkdir(parents=True)
    (proc / "41" / "cmdline").write_bytes(b"/usr/bin/containerd\0")
    # The link may show another path (a chroot, another mount namespace): a hard link here.
    os.link(new / "io.containerd.metadata.v1.bolt" / "meta.db", tmp_path / "elsewhere.db")
    (proc / "41" / "fd" / "7").symlink_to(tmp_path / "elsewhere.db")
    (proc / "42" / "fd").mkdir(parents=True)
    (proc / "42" / "cmdline").write_bytes(b"cat\0")
    (proc / "42" / "fd" / "3").symlink_to(old / "io.containerd.metadata.v1.bolt" / "meta.db")
    assert holds_root(str(new), str(proc)) is True
    assert holds_root(str(old), str(proc)) is False
    assert holds_root(str(tmp_path / "absent"), str(proc)) is False


def test_other_settings_under_the_old_root_are_found():
    assert paths_under(DEBIAN, "/var/lib/containerd") == ["/var/lib/containerd/opt"]
    assert paths_under('root = "/var/lib/containerd/x"\n', "/var/lib/containerd") == []
    assert paths_under(DEBIAN, "/srv/containerd") == []


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("\ufeffversion = 2\n", "byte-order mark"),
        ('disabled_plugins = [\n  "cri",\n]\n[grpc]\n', "line 1 starts an array or table"),
        ('x = [\n  ["a"],\n]\n', "line 1 starts an array or table"),
    ],
)
def test_files_a_line_edit_cannot_be_sure_of_are_refused(text, phrase):
    with pytest.raises(ContainerdError, match=phrase):
        config_with_root(text, "/srv/c")


def test_a_quoted_root_key_is_read_and_edited():
    text = '"root" = "/data/c"\n[grpc]\n'
    assert parse_containerd_root(text) == "/data/c"
    assert config_with_root(text, "/srv/c") == '"root" = "/srv/c"\n[grpc]\n'


def test_crlf_lines_stay_crlf_and_other_line_breaks_are_not_lines():
    text = 'version = 2\r\n# a comment\u2028root = "/x"\r\n\r\n[grpc]\r\n'
    edited = config_with_root(text, "/srv/c")
    assert edited == text.replace(
        '\u2028root = "/x"\r\n', '\u2028root = "/x"\r\nroot = "/srv/c"\r\n'
    )
    assert parse_containerd_root(edited) == "/srv/c"
