"""What a pass that visits only some directories looks at: the entries recorded as changed,
the way to them, and whole directories where a hard-link group reaches."""

from ansible_collections.dockerhost.storage.plugins.module_utils._tree_copy import (
    ALL,
    plan_visit,
)


def test_the_way_to_a_changed_entry_is_its_name_in_each_parent():
    visit = plan_visit({"overlay2/abc/diff/etc": {"hosts"}}, {})
    assert visit == {
        "overlay2/abc/diff/etc": {"hosts"},
        "overlay2/abc/diff": {"etc"},
        "overlay2/abc": {"diff"},
        "overlay2": {"abc"},
        "": {"overlay2"},
    }


def test_names_from_several_records_add_up_and_a_whole_listing_wins():
    visit = plan_visit({"a/b": {"x"}, "a": {"y"}, "c": ALL, "c/d": set()}, {})
    assert visit["a"] == {"b", "y"}
    assert visit["c"] is ALL
    assert visit[""] == {"a", "c"}
    assert visit["c/d"] == set()


def test_directories_sharing_a_hard_link_group_are_listed_whole_with_their_way():
    visit = plan_visit({"l1/usr": {"f"}}, {"l1/usr": {"l2/usr"}, "l2/usr": {"l1/usr"}})
    # Both, the first too: the group's first member in walk order may be anywhere in them.
    assert visit["l2/usr"] is ALL and visit["l1/usr"] is ALL
    assert visit["l2"] == {"usr"} and visit[""] == {"l1", "l2"}


def test_nothing_recorded_visits_the_root_alone():
    assert plan_visit({}, {}) == {"": set()}
