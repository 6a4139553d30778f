"""Subscriptions without a sidecar: topic matching, topic union, dispatch to callbacks."""

from __future__ import annotations

import logging

import pytest

from parsl_sidecar.events import Event, Subscription, Subscriptions, topic_matches


def test_topic_matches_prefixes_at_dots() -> None:
    assert topic_matches((), "anything")
    assert topic_matches(("*",), "job.state")
    assert topic_matches(("job",), "job") and topic_matches(("job",), "job.state")
    assert not topic_matches(("job",), "jobs") and not topic_matches(("job.state",), "job")


def test_union_of_topics_and_removal() -> None:
    subs = Subscriptions()
    closed: list[Subscription] = []
    a = Subscription(("log",), lambda e: None, closed.append)
    b = Subscription(("job", "log"), lambda e: None, closed.append)
    subs.add(a)
    subs.add(b)
    assert subs.topics() == ["job", "log"]
    everything = Subscription((), lambda e: None, closed.append)
    subs.add(everything)
    assert subs.topics() == []
    assert subs.remove(everything) is True
    b.close()
    b.close()
    assert closed == [b]
    assert subs.remove(b) is True and subs.remove(a) is False and not subs


def test_dispatch_calls_matching_callbacks_and_survives_a_failing_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    subs = Subscriptions()
    got: list[Event] = []

    def boom(e: Event) -> None:
        raise RuntimeError("callback bug")

    subs.add(Subscription(("job",), boom, lambda s: None))
    subs.add(Subscription(("job",), got.append, lambda s: None))
    subs.add(Subscription(("tunnel",), got.append, lambda s: None))
    with caplog.at_level(logging.ERROR, logger="parsl_sidecar"):
        subs.dispatch({"topic": "job.state"}, {"topic": "job.state", "ts": 5, "data": {"id": 1}})
        subs.dispatch({}, "not a map")
    assert got == [Event("job.state", 5, {"id": 1})]
    assert "callback bug" in caplog.text
