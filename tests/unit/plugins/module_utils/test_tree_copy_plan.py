"""What a pass that visits only some directories looks at: the entries recorded as changed,
the way to them, and every other member of a hard-link group one of them belongs to."""

from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import (
    ALL,
    plan_visit,
)


def test_the_way_to_a_changed_entry_is_its_name_in_each_parent():
    visit = plan_visit({"overlay2/abc/diff/etc": {"hosts"}}, {}, {})
    assert visit == {
        "overlay2/abc/diff/etc": {"hosts"},
        "overlay2/abc/diff": {"etc"},
        "overlay2/abc": {"diff"},
        "overlay2": {"abc"},
        "": {"overlay2"},
    }


def test_names_from_several_records_add_up_and_a_whole_listing_wins():
    visit = plan_visit({"a/b": {"x"}, "a": {"y"}, "c": ALL, "c/d": set()}, {}, {})
    assert visit["a"] == {"b", "y"}
    assert visit["c"] is ALL
    assert visit[""] == {"a", "c"}
    assert visit["c/d"] == set()


GROUP = ("l1/usr/f", "l1/usr/f.link", "l2/usr/g")
PARTNERS = dict.fromkeys(GROUP, GROUP)
LINKED_IN = {"l1/usr": ["l1/usr/f", "l1/usr/f.link"], "l2/usr": ["l2/usr/g"]}


def test_a_changed_member_of_a_hard_link_group_brings_every_other_member_and_its_way():
    # A write through one name is recorded in its directory only; the other names of the same
    # file, beside it or elsewhere, must be visited too, or their copies keep the old file.
    visit = plan_visit({"l1/usr": {"f"}}, PARTNERS, LINKED_IN)
    assert visit["l1/usr"] == {"f", "f.link"}
    assert visit["l2/usr"] == {"g"}
    assert visit["l2"] == {"usr"} and visit[""] == {"l1", "l2"}


def test_a_directory_read_whole_brings_the_partners_of_its_members():
    visit = plan_visit({"l2/usr": ALL}, PARTNERS, LINKED_IN)
    assert visit["l1/usr"] == {"f", "f.link"} and visit["l2/usr"] is ALL


def test_entries_in_no_group_bring_nothing_more():
    assert plan_visit({"l1/usr": {"other"}}, PARTNERS, LINKED_IN) == {
        "l1/usr": {"other"},
        "l1": {"usr"},
        "": {"l1"},
    }


def test_nothing_recorded_visits_the_root_alone():
    assert plan_visit({}, {}, {}) == {"": set()}
