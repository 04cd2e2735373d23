"""Clock exchanges over the bus: the robot answers, the headset measures.

There is no standard ROS service for clock exchanges, but ``sensor_msgs/TimeReference`` is the
standard message for relating one clock to another, so the exchange is a pair of topics:

- request  (headset → robot): ``header.stamp`` = ``time_ref`` = headset clock at send (t1),
  ``source`` = the headset's id;
- response (robot → headset): ``header.stamp`` = robot clock on receipt (t2), ``time_ref`` = t1
  echoed, ``source`` = the requester's id (each headset keeps only its own answers).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import RELIABLE
from mm_ros.core.clock_sync import ClockEstimate, ClockOffsetFilter, ClockSample

if TYPE_CHECKING:
    from collections.abc import Callable

    from mm_ros.bus.protocol import Bus

TIME_REFERENCE = "sensor_msgs/msg/TimeReference"
REQUEST_TOPIC = "/time_sync/request"
RESPONSE_TOPIC = "/time_sync/response"
NS_PER_S = 1_000_000_000


def _stamp(ns: int) -> dict[str, int]:
    return {"sec": ns // NS_PER_S, "nanosec": ns % NS_PER_S}


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


class TimeServer:
    """Robot side: answers each request with this bus's clock (``bus.now_ns``)."""

    def __init__(
        self, bus: Bus, request_topic: str = REQUEST_TOPIC, response_topic: str = RESPONSE_TOPIC
    ) -> None:
        self.bus = bus
        self.answered = 0
        self._make = bus.msg(TIME_REFERENCE)
        self._reply = bus.create_publisher(response_topic, TIME_REFERENCE, RELIABLE)
        self._requests = bus.create_subscription(
            request_topic, TIME_REFERENCE, self._on_request, RELIABLE
        )

    def _on_request(self, request: Any) -> None:
        received_ns = self.bus.now_ns()  # first thing: every ns spent before is offset error
        self._reply.publish(
            self._make(
                header={"stamp": _stamp(received_ns), "frame_id": request.header.frame_id},
                time_ref=request.time_ref,
                source=request.source,
            )
        )
        self.answered += 1


class ClockClient:
    """Headset side: sends requests on a timer and feeds the answers to a `ClockOffsetFilter`."""

    def __init__(  # noqa: PLR0917 - a constructor that wires a bus, kept explicit
        self,
        bus: Bus,
        client_id: str,
        clock_ns: Callable[[], int] = time.time_ns,
        period_s: float = 0.25,
        request_topic: str = REQUEST_TOPIC,
        response_topic: str = RESPONSE_TOPIC,
    ) -> None:
        self.client_id = client_id
        self.filter = ClockOffsetFilter()
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._estimate: ClockEstimate | None = None  # refit per answer, read per message
        self._make = bus.msg(TIME_REFERENCE)
        self._request = bus.create_publisher(request_topic, TIME_REFERENCE, RELIABLE)
        self._answers = bus.create_subscription(
            response_topic, TIME_REFERENCE, self._on_answer, RELIABLE
        )
        self._timer = bus.create_timer(period_s, self.send_request)

    def send_request(self) -> None:
        """Send one request stamped with the local clock."""
        t1 = self._clock_ns()
        with self._lock:
            self._pending.add(t1)
            if len(self._pending) > 64:  # noqa: PLR2004 - lost answers must not pile up
                self._pending.discard(min(self._pending))
        self._request.publish(
            self._make(
                header={"stamp": _stamp(t1), "frame_id": self.client_id},
                time_ref=_stamp(t1),
                source=self.client_id,
            )
        )

    def _on_answer(self, answer: Any) -> None:
        t3 = self._clock_ns()
        if answer.source != self.client_id:
            return
        t1 = _ns(answer.time_ref)
        with self._lock:
            if t1 not in self._pending:
                return
            self._pending.discard(t1)
            self.filter.add(ClockSample(t1, _ns(answer.header.stamp), t3))
            self._estimate = self.filter.estimate()

    def estimate(self) -> ClockEstimate | None:
        """Return the current estimate of the robot clock (None before the first answer)."""
        return self._estimate
