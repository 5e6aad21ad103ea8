"""The audit playbook over a fleet of deliberately different hosts.

Every host is an inventory host with ``ansible_connection: local``; the role's path and socket
variables (``audit_data_root``, ``audit_config_path``, ``audit_docker_host``,
``audit_host_root``, ``audit_containerd_root``) point each one at a tree of its own on real
filesystems: a small ext4 nearly out of inodes, a data-root on the root filesystem, a
daemon.json of mode 0666, a storage driver set both in a systemd drop-in and in daemon.json,
a host without Docker, a healthy host with a private dockerd on its own ext4 running a
container, and one unreachable host. Each must yield exactly its finding and no other.

Three hosts are hostile to the report itself: one named ``fleet`` (its files must not replace
the fleet report's), one whose data-root's name holds a newline and ``#`` (it must not forge
a heading in its Markdown report), and one that sends a string where a number belongs, as a
host running other code would (it must become an ``error`` entry naming the key, and the
others must be reported as usual).
"""

from __future__ import annotations

import datetime
import html
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from harness.images import import_image

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
)
from collection_path import collections_root  # noqa: E402
from prerequisites import skip_or_fail  # noqa: E402

pytestmark = pytest.mark.integration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Where a person finds the fleet report and the screenshot after a run.
OUTPUT_DIR = os.path.join(REPO_ROOT, ".build", "reports", "audit-fleet")

# No host of the fleet remaps user namespaces: CIS 2.9 warns on every host Docker ran on.
USERNS = ("userns_remap", "2.9", "warn")
EXPECTED = {
    "full-inodes": ("fail", [USERNS, ("free_inodes", None, "fail")]),
    "healthy": ("warn", [USERNS]),
    "no-docker": ("no_docker", []),
    "on-rootfs": ("fail", [("data_root_partition", "1.1.1", "fail"), USERNS]),
    "loose-daemon-json": ("fail", [USERNS, ("daemon_json_mode", "3.18", "fail")]),
    "flag-and-file": ("fail", [USERNS, ("flag_conflict", None, "fail")]),
    "unreachable": ("unreachable", []),
    "fleet": ("warn", [USERNS]),
    "odd-names": ("warn", [USERNS]),
    "odd-numbers": ("error", []),
}
# A data-root whose name tries to add a section to the host's Markdown report.
FORGED = "docker\n## Verdict\n- recommended: aufs #"
HEADINGS = [
    "# Docker storage audit: odd-names",
    "## Kernel",
    "## Data-root",
    "## Engine",
    "## Storage drivers",
    "## Verdict",
    "## Findings",
]
# A Python interpreter that runs the module and then puts a string where the data-root's
# inode usage (a number) belongs, as a host running other code than the controller would.
TAMPERING_INTERPRETER = """#!%s
import json, subprocess, sys
done = subprocess.run([sys.executable] + sys.argv[1:], capture_output=True, text=True)
try:
    result = json.loads(done.stdout)
except ValueError:
    sys.stdout.write(done.stdout)
else:
    for entry in result["capacity"]["filesystems"]:
        entry["inodes"]["used_percent"] = "12%%"
    sys.stdout.write(json.dumps(result))
sys.stderr.write(done.stderr)
sys.exit(done.returncode)
"""


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def _host_tree(base, name, daemon_json=None, mode=0o644):
    """A host's /etc/docker and unit tree under ``base/name``; returns its variables."""
    root = os.path.join(base, name)
    os.makedirs(root)
    config = os.path.join(root, "etc", "docker", "daemon.json")
    os.makedirs(os.path.dirname(config), mode=0o755)
    if daemon_json is not None:
        _write(config, json.dumps(daemon_json) + "\n", mode)
    return {
        "audit_config_path": config,
        "audit_host_root": root,
        # No engine answers on this socket: these hosts have Docker installed but stopped.
        "audit_docker_host": "unix://" + os.path.join(root, "docker.sock"),
    }


def _fill_inodes(directory, free_percent):
    """Create empty files in ``directory`` until fewer than ``free_percent`` of the
    filesystem's inodes are free; returns (free, total)."""
    st = os.statvfs(directory)
    target = int(st.f_files * free_percent / 100)
    for index in range(st.f_ffree - target):
        with open(os.path.join(directory, "f%05d" % index), "w", encoding="utf-8"):
            pass
    st = os.statvfs(directory)
    return st.f_ffree, st.f_files


def run_audit(inventory, *args):
    """The collection's audit playbook on ``inventory``, as an operator runs it."""
    return subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "dockerhost.storage.audit",
            "-i",
            inventory,
            *args,
        ],
        capture_output=True,
        text=True,
        env=dict(
            os.environ,
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            ANSIBLE_COLLECTIONS_PATH=collections_root(),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_HOST_KEY_CHECKING="0",
        ),
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def fleet(make_loopfs_module, start_dockerd_module, busybox_image, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("fleet"))
    shared = make_loopfs_module("ext4", size_mb=512)
    tiny = make_loopfs_module("ext4", size_mb=16, inodes=1024)
    hosts = {}

    # Healthy: a private dockerd with overlay2 on its own ext4, one running container.
    daemon = start_dockerd_module(
        os.path.join(shared.mount_point, "docker"), storage_driver="overlay2"
    )
    daemon.assert_started()
    import_image(daemon, busybox_image)
    daemon.docker(
        "run", "-d", "--network", "none", "--name", "web", busybox_image.name, "sleep", "600"
    )
    healthy_root = os.path.join(base, "healthy")
    os.makedirs(healthy_root)
    hosts["healthy"] = {
        "audit_config_path": daemon.config_file,
        "audit_docker_host": "unix://" + daemon.socket,
        "audit_host_root": healthy_root,
    }

    def containerd_root(name):
        path = os.path.join(shared.mount_point, "containerd-" + name)
        os.makedirs(path)
        return path

    hosts["healthy"]["audit_containerd_root"] = containerd_root("healthy")

    # No Docker: no daemon.json, no data-root, no engine, no containerd root.
    hosts["no-docker"] = _host_tree(base, "no-docker")
    hosts["no-docker"].update(
        audit_data_root=os.path.join(base, "no-docker", "var", "lib", "docker"),
        audit_containerd_root=os.path.join(base, "no-docker", "var", "lib", "containerd"),
    )

    # A data-root filesystem nearly out of inodes (below 5% free).
    full_root = os.path.join(tiny.mount_point, "docker")
    os.makedirs(full_root)
    free, total = _fill_inodes(full_root, 3)
    assert free * 100 < 5 * total, (free, total)
    hosts["full-inodes"] = _host_tree(base, "full-inodes", {})
    hosts["full-inodes"].update(
        audit_data_root=full_root, audit_containerd_root=containerd_root("full")
    )

    # A data-root on the root filesystem (the test's temporary directory is on it).
    rootfs_dir = os.path.join(base, "on-rootfs-docker")
    os.makedirs(rootfs_dir)
    hosts["on-rootfs"] = _host_tree(base, "on-rootfs", {"data-root": rootfs_dir})
    hosts["on-rootfs"]["audit_containerd_root"] = containerd_root("rootfs")

    # daemon.json of mode 0666.
    loose_dir = os.path.join(shared.mount_point, "loose-docker")
    os.makedirs(loose_dir)
    hosts["loose-daemon-json"] = _host_tree(
        base, "loose-daemon-json", {"data-root": loose_dir}, mode=0o666
    )
    hosts["loose-daemon-json"]["audit_containerd_root"] = containerd_root("loose")

    # storage-driver both in a systemd drop-in and in daemon.json.
    flags_dir = os.path.join(shared.mount_point, "flags-docker")
    os.makedirs(flags_dir)
    hosts["flag-and-file"] = _host_tree(
        base, "flag-and-file", {"data-root": flags_dir, "storage-driver": "overlay2"}
    )
    tree = hosts["flag-and-file"]["audit_host_root"]
    _write(
        os.path.join(tree, "lib/systemd/system/docker.service"),
        "[Service]\nExecStart=/usr/bin/dockerd -H fd://\n",
    )
    _write(
        os.path.join(tree, "etc/systemd/system/docker.service.d/storage.conf"),
        "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// --storage-driver=overlay2\n",
    )
    hosts["flag-and-file"]["audit_containerd_root"] = containerd_root("flags")

    # A host named like the fleet report, otherwise unremarkable.
    fleet_dir = os.path.join(shared.mount_point, "fleet-docker")
    os.makedirs(fleet_dir)
    hosts["fleet"] = _host_tree(base, "fleet", {"data-root": fleet_dir})
    hosts["fleet"]["audit_containerd_root"] = containerd_root("fleet")

    # A data-root whose name holds a newline and "#".
    odd_dir = os.path.join(shared.mount_point, FORGED)
    os.makedirs(odd_dir)
    hosts["odd-names"] = _host_tree(base, "odd-names", {"data-root": odd_dir})
    hosts["odd-names"]["audit_containerd_root"] = containerd_root("odd-names")

    # A host whose result has a string where a number belongs.
    numbers_dir = os.path.join(shared.mount_point, "numbers-docker")
    os.makedirs(numbers_dir)
    hosts["odd-numbers"] = _host_tree(base, "odd-numbers", {"data-root": numbers_dir})
    hosts["odd-numbers"]["audit_containerd_root"] = containerd_root("numbers")
    tampering = os.path.join(base, "tampering-python")
    _write(tampering, TAMPERING_INTERPRETER % sys.executable, mode=0o755)

    for variables in hosts.values():
        variables.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    hosts["odd-numbers"]["ansible_python_interpreter"] = tampering
    # Nothing listens on port 1: the connection is refused at once.
    hosts["unreachable"] = {
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": 1,
        "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no",
    }

    inventory = os.path.join(base, "inventory.json")
    with open(inventory, "w", encoding="utf-8") as handle:
        json.dump({"all": {"hosts": hosts}}, handle, indent=2)
    watched = [
        os.path.join(hosts[name]["audit_config_path"])
        for name in ("loose-daemon-json", "flag-and-file", "full-inodes")
    ]
    before = {path: (os.stat(path).st_mtime_ns, os.stat(path).st_mode) for path in watched}

    report_dir = os.path.join(base, "reports")
    completed = run_audit(inventory, "--check", "-e", "audit_report_dir=" + report_dir)
    after = {path: (os.stat(path).st_mtime_ns, os.stat(path).st_mode) for path in watched}
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    for name in ("fleet.html", "fleet.json", "fleet.xml"):
        if os.path.exists(os.path.join(report_dir, name)):
            shutil.copy(os.path.join(report_dir, name), OUTPUT_DIR)
    return {
        "completed": completed,
        "report_dir": report_dir,
        "unchanged": before == after,
        "hosts": hosts,
        "inodes": (free, total),
    }


def _load(fleet, name):
    path = os.path.join(fleet["report_dir"], name)
    assert os.path.exists(path), fleet["completed"].stdout[-3000:] + fleet["completed"].stderr
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_each_host_yields_exactly_its_findings(fleet):
    report = json.loads(_load(fleet, "fleet.json"))
    got = {
        host["host"]: (
            host["status"],
            [(f["check"], f["cis"], f["status"]) for f in host["findings"]],
        )
        for host in report["hosts"]
    }
    assert got == EXPECTED
    by_name = {host["host"]: host for host in report["hosts"]}
    assert by_name["no-docker"]["docker"] == "absent"
    assert by_name["healthy"]["docker"] == "running"
    assert by_name["healthy"]["driver"] == "overlay2"
    merged = [c for c in by_name["healthy"]["checks"] if c["check"] == "merged_mounts"][0]
    assert merged["status"] == "pass"
    assert merged["evidence"]["summary"]["running"] == 1
    free, total = fleet["inodes"]
    full = by_name["full-inodes"]
    assert full["usage"]["inodes_total"] == total
    assert full["usage"]["inodes_used_percent"] >= 95
    assert by_name["unreachable"]["reason"]
    # The host that sent a string for a number is named, with the key; nothing else of it.
    odd = by_name["odd-numbers"]
    assert "the storage_facts result of odd-numbers cannot be reported" in odd["reason"]
    assert (
        "key capacity.filesystems[0].inodes.used_percent must be a number or null, found the "
        'string "12%"' in odd["reason"]
    )
    assert odd["usage"] is None and odd["checks"] == []
    assert report["summary"] == {
        "hosts": 10,
        "ok": 0,
        "warn": 3,
        "fail": 4,
        "no_docker": 1,
        "unreachable": 1,
        "error": 1,
        "findings_fail": 4,
        "findings_warn": 7,
    }


def test_play_fails_on_failing_findings_and_changes_nothing(fleet):
    completed = fleet["completed"]
    output = completed.stdout
    assert completed.returncode != 0, output[-3000:]
    assert "audit_fail_on is fail and 6 host(s) did not pass" in output
    # The short summary is printed at the end.
    assert "10 host(s): 0 ok, 3 warn, 4 fail, 1 without Docker, 1 unreachable, 1 error" in output
    assert fleet["unchanged"]
    # Per-host reports under hosts/ for every host that was reached; only the fleet report
    # beside them.
    for name in EXPECTED:
        for suffix in (".md", ".json"):
            exists = os.path.exists(os.path.join(fleet["report_dir"], "hosts", name + suffix))
            assert exists is (name != "unreachable"), name + suffix
    assert sorted(os.listdir(fleet["report_dir"])) == [
        "fleet.html",
        "fleet.json",
        "fleet.xml",
        "hosts",
    ]
    markdown = _load(fleet, "hosts/loose-daemon-json.md")
    assert "- fail: daemon_json_mode (CIS 3.18): " in markdown
    assert "Docker: stopped (the data-root exists but " in markdown
    raw = json.loads(_load(fleet, "hosts/healthy.json"))
    assert raw["docker_storage"]["docker"]["state"] == "running"
    assert raw["docker_storage_support"]["would_pick"]["driver"] == "overlay2"


def test_a_host_named_fleet_does_not_replace_the_fleet_report(fleet):
    report = json.loads(_load(fleet, "fleet.json"))
    assert sorted(host["host"] for host in report["hosts"]) == sorted(EXPECTED)
    raw = json.loads(_load(fleet, "hosts/fleet.json"))
    assert raw["inventory_hostname"] == "fleet"
    assert _load(fleet, "hosts/fleet.md").startswith("# Docker storage audit: fleet\n")


def test_a_newline_and_hash_in_a_host_value_do_not_forge_markdown(fleet):
    markdown = _load(fleet, "hosts/odd-names.md")
    lines = markdown.splitlines()
    assert [line for line in lines if line.startswith("#")] == HEADINGS
    assert "- recommended: aufs #" not in lines
    path = fleet["hosts"]["odd-names"]["audit_config_path"]
    with open(path, encoding="utf-8") as handle:
        data_root = json.load(handle)["data-root"]
    # The name shows on its one line, the newlines as \n and "#" escaped.
    escaped = FORGED.replace("#", "\\#").replace("\n", "\\n")
    shown = [line for line in lines if line.startswith("- path: ")]
    assert len(shown) == 1 and shown[0].endswith("/%s (from daemon.json)" % escaped), shown
    # The raw facts keep the name as it is.
    raw = json.loads(_load(fleet, "hosts/odd-names.json"))
    assert raw["docker_storage"]["data_root"] == data_root


def test_a_host_sending_a_string_for_a_number_gets_a_short_report(fleet):
    markdown = _load(fleet, "hosts/odd-numbers.md")
    assert markdown.startswith("# Docker storage audit: odd-numbers\n\nNot reported: ")
    assert "capacity.filesystems\\[0\\].inodes.used_percent" in markdown, markdown
    raw = json.loads(_load(fleet, "hosts/odd-numbers.json"))
    assert raw["inventory_hostname"] == "odd-numbers"


def test_junit_has_one_test_case_per_host_and_check(fleet):
    root = ET.fromstring(_load(fleet, "fleet.xml"))
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == set(EXPECTED)
    failures = sorted(
        (name, case.get("name"))
        for name, suite in suites.items()
        for case in suite.findall("testcase")
        if case.find("failure") is not None
    )
    assert failures == [
        ("flag-and-file", "flag_conflict"),
        ("full-inodes", "free_inodes"),
        ("loose-daemon-json", "daemon_json_mode (CIS 3.18)"),
        ("on-rootfs", "data_root_partition (CIS 1.1.1)"),
    ]
    assert suites["unreachable"].find("testcase/error").get("type") == "unreachable"
    odd = suites["odd-numbers"].find("testcase/error")
    assert odd.get("type") == "error"
    assert "capacity.filesystems[0].inodes.used_percent" in odd.get("message")
    names = [case.get("name") for case in suites["healthy"].findall("testcase")]
    assert len(names) == 50
    # Section 3's daemon files and sockets, each with its CIS number.
    assert "docker_service_owner (CIS 3.1)" in names
    assert "containerd_sock_mode (CIS 3.24)" in names


class _Dom(HTMLParser):
    """The rows of the host table and the bars of the charts, from a DOM dump."""

    def __init__(self):
        super().__init__()
        self.rows = []
        self.bars = {}
        self.sorted_header = None
        self._chart = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-host" in attrs:
            self.rows.append(attrs["data-host"])
        elif tag == "svg" and attrs.get("id", "").startswith("chart-"):
            self._chart = attrs["id"]
            self.bars[self._chart] = {}
        elif tag == "rect" and self._chart:
            self.bars[self._chart][attrs["data-host"]] = (attrs["data-value"], int(attrs["width"]))
        elif tag == "th" and "sorted-" in attrs.get("class", ""):
            self.sorted_header = attrs["class"]

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = None


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    skip_or_fail("Debian's chromium package is not installed (scripts/setup-host installs it)")


def _chromium_argv(profile, *args):
    return [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--user-data-dir=" + profile,
        *args,
    ]


def test_html_report_renders_in_headless_chromium(fleet, tmp_path):
    page = os.path.join(fleet["report_dir"], "fleet.html")
    _load(fleet, "fleet.html")
    # A copy whose script sorts the table by the "inodes used" column, descending, once
    # loaded: the DOM dump then shows the script ran and sorted numerically.
    with open(page, encoding="utf-8") as handle:
        text = handle.read()
    sorted_page = os.path.join(str(tmp_path), "sorted.html")
    click = (
        "<script>var h=document.getElementById('hosts').tHead.rows[0].cells[6];"
        "h.click();h.click();</script></body>"
    )
    with open(sorted_page, "w", encoding="utf-8") as handle:
        handle.write(text.replace("</body>", click))
    dump = subprocess.run(
        _chromium_argv(str(tmp_path / "profile-dom"), "--dump-dom", "file://" + sorted_page),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dom = _Dom()
    dom.feed(dump.stdout)
    assert sorted(dom.rows) == sorted(EXPECTED)
    # Highest inode usage first; hosts without a figure sort after those with one.
    assert dom.rows[0] == "full-inodes", dom.rows
    assert dom.sorted_header == "sorted-desc"
    assert set(dom.bars) == {"chart-inodes", "chart-bytes"}
    inodes = dom.bars["chart-inodes"]
    assert set(inodes) == set(EXPECTED)
    assert inodes["unreachable"] == ("", 0)
    assert inodes["no-docker"] == ("", 0)
    assert inodes["odd-numbers"] == ("", 0)
    assert inodes["full-inodes"][1] > inodes["healthy"][1] > 0
    assert all(
        width > 0
        for host, (_v, width) in dom.bars["chart-bytes"].items()
        if host not in ("unreachable", "no-docker", "odd-numbers")
    )

    screenshot = os.path.join(OUTPUT_DIR, "fleet.png")
    if os.path.exists(screenshot):
        os.unlink(screenshot)
    subprocess.run(
        _chromium_argv(
            str(tmp_path / "profile-shot"),
            "--hide-scrollbars",
            "--window-size=1280,1400",
            "--screenshot=" + screenshot,
            "file://" + page,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    with open(screenshot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(screenshot) > 10000


# Run in a copy of the page once it has loaded: every run of letters and digits in a table
# cell split over two lines (a long path may wrap after a "/" or "-", a word such as "status"
# must not become "stat/us"), the view by check as a person reads it, and the host rows left
# after a click on the "fail" card. The answer goes into a <pre id="probe"> the DOM dump shows.
_PROBE = """<script>(function(){
  var broken=[];
  var cells=document.querySelectorAll('table td, table th');
  for(var i=0;i<cells.length;i++){
    var walker=document.createTreeWalker(cells[i],NodeFilter.SHOW_TEXT);
    for(var node=walker.nextNode();node;node=walker.nextNode()){
      var re=/[A-Za-z0-9]+/g,m;
      while((m=re.exec(node.data))){
        var range=document.createRange();range.setStart(node,m.index);
        range.setEnd(node,m.index+m[0].length);
        var tops={};var rects=range.getClientRects();
        for(var k=0;k<rects.length;k++){tops[Math.round(rects[k].top)]=1;}
        if(Object.keys(tops).length>1){broken.push(m[0]);}}}}
  var checks={};
  var rows=document.getElementById('by-check').tBodies[0].rows;
  for(var r=0;r<rows.length;r++){
    var c=rows[r].cells;
    checks[rows[r].getAttribute('data-check')]=[c[2].textContent,c[3].textContent,
      c[4].textContent,c[5].textContent,c[6].textContent];}
  document.querySelector('#summary .card[data-status="fail"]').click();
  var shown=[];var hosts=document.getElementById('hosts').tBodies[0].rows;
  for(var h=0;h<hosts.length;h++){
    if(hosts[h].offsetParent!==null){shown.push(hosts[h].getAttribute('data-host'));}}
  var order=[];for(var o=0;o<rows.length;o++){order.push(rows[o].getAttribute('data-check'));}
  var pre=document.createElement('pre');pre.id='probe';
  pre.textContent=JSON.stringify({broken:broken,checks:checks,order:order,shown:shown,
    filter:document.getElementById('filter').textContent,
    overflow:document.documentElement.scrollWidth>window.innerWidth});
  document.body.appendChild(pre);})();</script></body>"""


@pytest.mark.parametrize("width, height", [(1280, 1400), (390, 844)], ids=["1280px", "390px"])
def test_html_report_by_check_reads_whole_words_at_both_widths(fleet, tmp_path, width, height):
    page = os.path.join(fleet["report_dir"], "fleet.html")
    with open(page, encoding="utf-8") as handle:
        text = handle.read()
    probed = os.path.join(str(tmp_path), "probed.html")
    with open(probed, "w", encoding="utf-8") as handle:
        handle.write(text.replace("</body>", _PROBE))
    size = "--window-size=%d,%d" % (width, height)
    dump = subprocess.run(
        _chromium_argv(str(tmp_path / "profile-dom"), size, "--dump-dom", "file://" + probed),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    start = dump.stdout.index('<pre id="probe">') + len('<pre id="probe">')
    probe = json.loads(html.unescape(dump.stdout[start : dump.stdout.index("</pre>", start)]))
    assert probe["broken"] == [], "words split over two lines at %d px" % width
    checks = probe["checks"]
    # fail, warn, pass, skipped, and the failing hosts, for each check the fleet failed.
    assert checks["free_inodes"][0] == "1" and checks["free_inodes"][4] == "fail: full-inodes"
    assert checks["data_root_partition"][0] == "1"
    assert checks["data_root_partition"][4] == "fail: on-rootfs"
    assert checks["daemon_json_mode"][:2] == ["1", "0"]
    assert checks["flag_conflict"][4] == "fail: flag-and-file"
    # The checks that fail somewhere come first.
    failing = {"free_inodes", "data_root_partition", "daemon_json_mode", "flag_conflict"}
    assert set(probe["order"][:4]) == failing
    # Eight hosts reported checks (not unreachable, not odd-numbers): each check counts each
    # of them once.
    assert all(sum(int(n) for n in counts[:4]) == 8 for counts in checks.values()), checks
    assert sorted(probe["shown"]) == sorted(h for h, (s, _f) in EXPECTED.items() if s == "fail")
    assert probe["filter"] == "(status fail)"

    screenshot = os.path.join(OUTPUT_DIR, "fleet-%dpx.png" % width)
    if os.path.exists(screenshot):
        os.unlink(screenshot)
    subprocess.run(
        _chromium_argv(
            str(tmp_path / "profile-shot"),
            "--hide-scrollbars",
            size,
            "--screenshot=" + screenshot,
            "file://" + page,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    with open(screenshot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_second_run_says_when_the_data_root_fills_at_the_pace_since_the_first(fleet, tmp_path):
    """The trend on real figures: the first run's fleet.json, moved one day back and with 100
    fewer inodes used on the full host, is the previous run of a second audit of two hosts."""
    first = json.loads(_load(fleet, "fleet.json"))
    then = datetime.datetime.strptime(first["generated"], "%Y-%m-%dT%H:%M:%SZ")
    first["generated"] = (then - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    [full] = [h for h in first["hosts"] if h["host"] == "full-inodes"]
    full["usage"]["inodes_used"] -= 100
    report_dir = tmp_path / "reports"
    report_dir.mkdir()
    (report_dir / "fleet.json").write_text(json.dumps(first))
    inventory = tmp_path / "inventory.json"
    hosts = {name: fleet["hosts"][name] for name in ("full-inodes", "healthy")}
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    completed = run_audit(
        str(inventory), "-e", "audit_report_dir=%s audit_fail_on=never" % report_dir
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    second = json.loads((report_dir / "fleet.json").read_text())
    assert second["previous"] == first["generated"]
    trends = {h["host"]: (h["trend"], h["usage"]) for h in second["hosts"]}
    trend, usage = trends["full-inodes"]
    # A day and the seconds between the runs: a little under 100 inodes a day.
    assert 1.0 <= trend["days"] < 1.01
    assert 95 <= trend["inodes"]["per_day"] <= 100
    free = usage["inodes_total"] - usage["inodes_used"]
    assert trend["inodes"]["days_until_full"] == pytest.approx(
        free / trend["inodes"]["per_day"], abs=0.1
    )
    assert trend["inodes"]["days_until_full"] < 1
    # The healthy host's figures were not moved: it is not filling (or barely, if its
    # private dockerd wrote meanwhile), and it has a trend all the same.
    assert trends["healthy"][0]["days"] == trend["days"]
    page = (report_dir / "fleet.html").read_text()
    assert "%s d (inodes)</td>" % trend["inodes"]["days_until_full"] in page
    assert (
        "full-inodes: fail: userns_remap (warn), free_inodes (fail); data-root full in "
        in completed.stdout
    )
