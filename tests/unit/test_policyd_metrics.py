"""The policy service's per-user counters: bounded in series, exact in sums, valid text format."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstack.policyd.metrics import OTHER_USERS, Metrics, UserCounter

SAMPLE = re.compile(r'^(\w+)\{((?:\w+="(?:[^"\\]|\\.)*",?)*)\} (\S+)$')


def samples(counter: UserCounter) -> dict[tuple[tuple[str, str], ...], float]:
    """The rendered sample lines, parsed back: label pairs -> value."""
    found = {}
    for line in counter.render():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        pairs = tuple(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2)))
        found[pairs] = float(match.group(3))
    return found


def test_counts_per_user_and_reason():
    refused = UserCounter("policyd_refused_total", "help", ("reason",))
    refused.inc("alice@example.net", "limit")
    refused.inc("alice@example.net", "limit", amount=2)
    refused.inc("alice@example.net", "unchecked")
    refused.inc("bob@example.net", "limit")
    assert refused.get("alice@example.net", "limit") == 3
    assert samples(refused) == {
        (("user", "alice@example.net"), ("reason", "limit")): 3,
        (("user", "alice@example.net"), ("reason", "unchecked")): 1,
        (("user", "bob@example.net"), ("reason", "limit")): 1,
    }
    assert refused.render()[:2] == [
        "# HELP policyd_refused_total help",
        "# TYPE policyd_refused_total counter",
    ]


def test_the_user_counted_longest_ago_is_folded_into_other():
    sent = UserCounter("policyd_sent_recipients_total", "help", max_users=2)
    sent.inc("a@example.net", amount=5)
    sent.inc("b@example.net", amount=7)
    sent.inc("a@example.net")  # a is now the more recent
    sent.inc("c@example.net", amount=1)  # b leaves
    assert samples(sent) == {
        (("user", "a@example.net"),): 6,
        (("user", "c@example.net"),): 1,
        (("user", OTHER_USERS),): 7,
    }
    # Back after its eviction: a new series from zero, the old counts stay in _other.
    sent.inc("b@example.net", amount=2)
    assert samples(sent)[(("user", "b@example.net"),)] == 2
    assert samples(sent)[(("user", OTHER_USERS),)] == 13


users = st.sampled_from([f"u{i}@example.net" for i in range(12)])


@given(st.lists(st.tuples(users, st.sampled_from(["limit", "unchecked"]), st.integers(1, 9))))
def test_series_stay_bounded_and_sums_exact(events):
    refused = UserCounter("policyd_refused_total", "help", ("reason",), max_users=4)
    totals: dict[str, float] = {}
    for user, reason, amount in events:
        refused.inc(user, reason, amount=amount)
        totals[reason] = totals.get(reason, 0) + amount
    found = samples(refused)
    users_seen = {dict(pairs)["user"] for pairs in found} - {OTHER_USERS}
    assert len(users_seen) <= 4
    for reason, total in totals.items():
        assert sum(v for pairs, v in found.items() if dict(pairs)["reason"] == reason) == total


def test_label_values_are_escaped():
    counter = UserCounter("policyd_sent_recipients_total", "help")
    counter.inc('odd"\\user\nname')
    (line,) = [line for line in counter.render() if not line.startswith("#")]
    assert line == 'policyd_sent_recipients_total{user="odd\\"\\\\user\\nname"} 1'


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="max_users"):
        UserCounter("x_total", "help", max_users=0)


def test_every_per_user_metric_is_rendered_with_its_bound():
    metrics = Metrics(max_users=1)
    metrics.refused.inc("a@example.net", "limit")
    metrics.refused.inc("b@example.net", "limit")
    metrics.sent_recipients.inc("a@example.net", amount=3)
    metrics.limit_reports.inc("a@example.net")
    text = metrics.render()
    assert 'policyd_refused_total{user="b@example.net",reason="limit"} 1' in text
    assert f'policyd_refused_total{{user="{OTHER_USERS}",reason="limit"}} 1' in text
    assert 'policyd_sent_recipients_total{user="a@example.net"} 3' in text
    assert 'policyd_outbound_limit_reports_total{user="a@example.net"} 1' in text
