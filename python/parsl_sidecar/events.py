"""Events from the sidecar: the Event type, subscriptions and their topic matching.

``Client.subscribe`` registers a :class:`Subscription` here; the client's I/O thread hands each
event message to :meth:`Subscriptions.dispatch`, which calls every matching callback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "Subscription", "Subscriptions", "topic_matches"]

log = logging.getLogger("parsl_sidecar")


@dataclass(frozen=True)
class Event:
    """One event from the sidecar (see ``Client.subscribe``).

    Attributes
    ----------
    topic : str
        Dotted topic, e.g. ``"transfer.progress"``.
    ts : float
        The sidecar's clock when it was emitted, milliseconds since the epoch.
    data : dict
        The event's fields.
    """

    topic: str
    ts: float
    data: dict[str, Any]


def topic_matches(prefixes: tuple[str, ...], topic: str) -> bool:
    """Whether ``topic`` equals or lies below one of ``prefixes`` (all topics when empty).

    Parameters
    ----------
    prefixes : tuple of str
        Topic prefixes, e.g. ``("transfer", "job.state")``; ``"*"`` matches everything.
    topic : str
        A dotted topic.

    Returns
    -------
    bool
        ``True`` for ``transfer`` and ``transfer.progress`` under ``transfer``, not ``transfers``.
    """
    return not prefixes or any(p in ("*", topic) or topic.startswith(p + ".") for p in prefixes)


class Subscription:
    """A callback receiving events; ``close()`` (or leaving the ``with`` block) ends it.

    Parameters
    ----------
    topics : tuple of str
        Topic prefixes (see :func:`topic_matches`).
    callback : callable
        Called with each matching :class:`Event`.
    on_close : callable
        Called once with this subscription when it is closed.
    """

    def __init__(
        self,
        topics: tuple[str, ...],
        callback: Callable[[Event], None],
        on_close: Callable[[Subscription], None],
    ) -> None:
        self.topics = topics
        self.callback = callback
        self.closed = False
        self._on_close = on_close

    def matches(self, topic: str) -> bool:
        """Whether an event of ``topic`` goes to this subscription."""
        return topic_matches(self.topics, topic)

    def close(self) -> None:
        """Stop receiving events; the sidecar is told when no subscription is left."""
        if not self.closed:
            self.closed = True
            self._on_close(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscriptions:
    """The open subscriptions of one client (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []

    def __bool__(self) -> bool:
        return bool(self._subs)

    def add(self, sub: Subscription) -> None:
        """Register ``sub``."""
        with self._lock:
            self._subs.append(sub)

    def remove(self, sub: Subscription) -> bool:
        """Forget ``sub``; returns whether any subscription is left."""
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            return bool(self._subs)

    def topics(self) -> list[str]:
        """The union of the prefixes to ask the sidecar for (empty: every event)."""
        with self._lock:
            if any(not s.topics for s in self._subs):
                return []
            return sorted({t for s in self._subs for t in s.topics})

    def dispatch(self, header: dict[str, Any], body: Any) -> None:
        """Deliver one event message to every matching subscription."""
        if not isinstance(body, dict):
            return
        topic = str(body.get("topic", header.get("topic", "")))
        data = body.get("data")
        ts = body.get("ts", header.get("ts", 0))
        event = Event(topic, ts, data if isinstance(data, dict) else {})
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if sub.matches(topic):
                try:
                    sub.callback(event)
                except Exception:
                    log.exception("event callback for %s failed", topic)
