"""Users' own spam thresholds as rspamd's settings map (mailstack/userspam.py)."""

import json

from mailstack.userspam import BASE_PRIORITY, Thresholds, render, write_if_changed


def test_the_strictest_recipients_thresholds_come_first():
    settings = json.loads(
        render(
            [
                Thresholds("lenient@example.org", 8.0, 30.0),
                Thresholds("strict@example.org", 2.0, 4.0),
                Thresholds("middle@example.org", 5.0, 10.0),
            ]
        )
    )
    by_address = {entry["rcpt"]: entry for entry in settings.values()}
    assert by_address["strict@example.org"]["apply"]["actions"] == {
        "reject": 4.0,
        "add header": 2.0,
    }
    priorities = {address: entry["priority"] for address, entry in by_address.items()}
    assert (
        priorities["strict@example.org"]
        > priorities["middle@example.org"]
        > priorities["lenient@example.org"]
        >= BASE_PRIORITY
    )


def test_no_user_thresholds_is_an_empty_map():
    assert json.loads(render([])) == {}


def test_the_map_is_replaced_only_when_it_changes(tmp_path):
    path = tmp_path / "map.json"
    assert write_if_changed(path, "a") is True
    inode = path.stat().st_ino
    assert write_if_changed(path, "a") is False
    assert path.stat().st_ino == inode
    assert write_if_changed(path, "b") is True
    assert path.read_text() == "b" and oct(path.stat().st_mode)[-3:] == "644"
