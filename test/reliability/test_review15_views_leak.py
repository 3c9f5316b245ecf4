"""Review of issue 15: views of schema mongo_river owned by the catalog owner (a superuser bypasses
row security) must not show another owner's state to an admin."""

from test_secrets import PASSWORD, as_role, auth_peer, sec  # noqa: F401


def test_views_as_other_admin(sec):
    pg = sec
    leaks = {}
    for view in ("columns", "status", "copy_progress", "rivers"):
        code, rows = as_role(pg, "bob", f"SELECT * FROM mongo_river.{view}")
        if view != "rivers" and "alice_r" in repr(rows):
            leaks[view] = rows
        if PASSWORD in repr(rows):
            leaks[view + " (password)"] = rows
    assert not leaks, leaks
