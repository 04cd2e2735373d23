"""``mm-ros ask``: ask the model service a question over the bus and print its answer.

Sends an ``mm_ros/action/Ask`` goal to ``/mm/ask`` (the service node is ``mm``), optionally
streams the partial text from the feedback, then prints the answer text, each box (label, pixel
box in the source image, bearing) and the per-stage latency, or the whole answer as JSON.
Exit codes: 0 an answer, 1 no answer (the answer's error, a timeout, the server gone), 2 bad usage.

The client never hangs on a dead server: it waits for the result in slices and checks between
them that the action server is still in the graph.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import time
from dataclasses import asdict, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

from mm_ros.cli.bus_cmd import _bus_options, open_cli_bus
from mm_ros.core.errors import ConfigError, MmRosError
from mm_ros.core.prompt import Task

if TYPE_CHECKING:
    import argparse

    from mm_ros.bus.zenoh_actions import ClientGoalHandle, ZenohActionClient
    from mm_ros.core.answers import AnswerValue

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
ASK_TYPE = "mm_ros/action/Ask"
DEFAULT_ACTION = "/mm/ask"
MODALITIES = ("image", "video", "audio", "imu")
SERVER_WAIT_S = 10.0  # how long to look for the action server before giving up
SLICE_S = 1.0  # between two checks that the server is still there while waiting for the result
PRESENCE_TIMEOUT_S = 1.0  # one graph look-up for the server
# The goal carries the same timeout, and the service's own timeout answer names what was slow;
# wait a little longer than the service so that answer wins the race.
GRACE_FRACTION, GRACE_MAX_S = 0.25, 2.0


class AskFailedError(MmRosError):
    """The question got no answer (server gone, timeout, goal rejected)."""


def register(subparsers: Any) -> None:
    """Add ``mm-ros ask``."""
    ask = subparsers.add_parser(
        "ask",
        help="ask the model service a question and print the answer",
        description="Send an mm_ros/action/Ask goal and print the answer, boxes and bearings.",
    )
    _bus_options(ask)
    ask.add_argument("question", help='e.g. "what is on my left?"')
    ask.add_argument(
        "--task",
        default="",
        metavar="TASK",
        help=f"{' | '.join(t.value for t in Task)} "
        "(default: from a [task] prefix, else inferred from the words)",
    )
    ask.add_argument(
        "--modalities",
        default="",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(MODALITIES)} (default: all with data)",
    )
    ask.add_argument(
        "--window",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds of audio/IMU history (0 = default)",
    )
    ask.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds (default 30)"
    )
    ask.add_argument(
        "--max-new-tokens",
        type=int,
        default=0,
        metavar="N",
        help="generation limit (0 = service default)",
    )
    ask.add_argument("--stream", action="store_true", help="print the text as it is generated")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    ask.add_argument(
        "--action", default=DEFAULT_ACTION, metavar="NAME", help=f"default {DEFAULT_ACTION}"
    )
    ask.set_defaults(handler=_ask)


def goal(args: argparse.Namespace) -> dict[str, Any]:
    """Return the Ask goal fields for the parsed arguments; raise ``ConfigError`` on bad usage."""
    if not args.question.strip():
        raise ConfigError("expected a question, found an empty string")
    tasks = [t.value for t in Task]
    if args.task and args.task not in tasks:
        raise ConfigError(f"--task must be one of {', '.join(tasks)}, found {args.task!r}")
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        msg = f"--modalities takes {','.join(MODALITIES)}, found {','.join(unknown)}"
        raise ConfigError(msg)
    if not (math.isfinite(args.window) and args.window >= 0):
        raise ConfigError(f"--window must be >= 0 s, found {args.window}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(f"--timeout must be > 0 s, found {args.timeout}")
    if not 0 <= args.max_new_tokens < 2**32:
        raise ConfigError(f"--max-new-tokens must be >= 0, found {args.max_new_tokens}")
    return {
        "question": args.question,
        "task": args.task,
        "modalities": modalities,
        "window_s": args.window,
        "timeout_s": args.timeout,
        "max_new_tokens": args.max_new_tokens,
    }


class StreamPrinter:
    """Prints the partial text of each feedback as it grows (called on the bus thread).

    Feedback and result travel on different channels, so the result can overtake the last
    feedback messages: ``end`` completes the line with the final text and later feedback is
    dropped.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._shown = ""
        self._ended = False
        self._lock = threading.Lock()

    def feedback(self, message: Any) -> None:
        """Print what is new in ``partial_text``; start a new line if earlier text changed."""
        with self._lock:
            if not self._ended:
                self._show(str(message.partial_text))

    def _show(self, text: str) -> None:
        if text == self._shown:
            return
        if text.startswith(self._shown):
            self._out.write(text[len(self._shown) :])
        else:
            self._out.write("\n" + text)
        self._shown = text
        self._out.flush()

    def end(self, final_text: str = "") -> None:
        """Finish the streamed line, first catching up with ``final_text`` if it is given."""
        with self._lock:
            self._ended = True
            if final_text:
                self._show(final_text)
            if self._shown:
                self._out.write("\n")
                self._out.flush()
            self._shown = ""


def _ask(args: argparse.Namespace) -> int:
    from mm_ros.bus.protocol import BusTimeoutError, GoalStatus
    from mm_ros.nodes.convert import answer_value

    fields = goal(args)
    stream = StreamPrinter(sys.stderr if args.json else sys.stdout) if args.stream else None
    with open_cli_bus(args) as bus:
        name = bus.resolve(args.action)
        client = bus.create_action_client(name, ASK_TYPE)
        try:
            if not client.wait_for_server(min(args.timeout, SERVER_WAIT_S)):
                raise AskFailedError(f"no action server {name} on the bus (is the `mm` node up?)")
            try:
                handle = client.send_goal(
                    fields,
                    feedback=stream.feedback if stream else None,
                    timeout_s=min(args.timeout, SERVER_WAIT_S),
                )
            except BusTimeoutError as err:
                if not client.wait_for_server(PRESENCE_TIMEOUT_S):  # it died with the goal
                    raise AskFailedError(f"action server {name} went away") from err
                raise AskFailedError(f"action server {name} did not take the goal: {err}") from err
            if not handle.accepted:
                raise AskFailedError(f"action server {name} rejected the question")
            try:
                status, result = wait_for_result(client, handle, name, args.timeout)
            except KeyboardInterrupt:
                with contextlib.suppress(MmRosError):
                    handle.cancel(timeout_s=2.0)
                raise
        except AskFailedError as err:
            if stream:
                stream.end()
            print(f"mm-ros ask: {err}", file=sys.stderr)
            return EXIT_RUNTIME
    value = answer_value(result.answer)
    if stream:
        stream.end(value.text)
    if status is not GoalStatus.SUCCEEDED and not value.error:
        value = replace(value, error=f"goal ended {status.name} without an answer")
    if args.json:
        print(json.dumps(as_json(value), indent=2, ensure_ascii=False))
    elif value.ok:
        print(describe(value))
    if not value.ok:
        print(f"mm-ros ask: {value.error}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_OK


def wait_for_result(
    client: ZenohActionClient, handle: ClientGoalHandle, name: str, timeout_s: float
) -> tuple[Any, Any]:
    """Return (status, Ask_Result); raise ``AskFailedError`` on a timeout or a vanished server.

    The result is fetched on a thread of its own; this thread checks every ``SLICE_S`` that the
    server is still in the graph, so a server that dies mid-goal ends the wait at once.
    """
    from mm_ros.bus.protocol import BusTimeoutError, GoalStatus

    wait_s = timeout_s + min(GRACE_MAX_S, GRACE_FRACTION * timeout_s)
    deadline = time.monotonic() + wait_s
    done = threading.Event()
    outcome: list[Any] = []

    def fetch() -> None:
        try:
            outcome.append(handle.result(wait_s))
        except MmRosError as err:
            outcome.append(err)
        finally:
            done.set()

    threading.Thread(target=fetch, name="ask-result", daemon=True).start()
    late = AskFailedError(f"no answer from {name} within {timeout_s:g} s")
    gone = AskFailedError(f"action server {name} went away")
    while not done.wait(max(0.0, min(SLICE_S, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            raise late
        if not client.wait_for_server(PRESENCE_TIMEOUT_S):
            raise gone
    got = outcome[0]
    if isinstance(got, BusTimeoutError):
        if time.monotonic() < deadline or not client.wait_for_server(PRESENCE_TIMEOUT_S):
            raise gone from got  # the result query ended early: its server left
        raise late from got
    if isinstance(got, MmRosError):
        raise AskFailedError(f"no result from {name}: {got}") from got
    status, result = got
    if status is GoalStatus.UNKNOWN or result is None:
        raise AskFailedError(f"action server {name} no longer knows the goal (restarted?)")
    return status, result


def describe(value: AnswerValue) -> str:
    """Return the answer as a person reads it: text, boxes with bearings, latency, model."""
    lines = [value.text or "(no text)"]
    by_index = {b.detection_index: b for b in value.bearings if b.detection_index >= 0}
    if value.detections:
        frame = f" of {value.image.frame_id}" if value.image and value.image.frame_id else ""
        lines.append(f"boxes (source-image pixels{frame}):")
    for index, detection in enumerate(value.detections):
        box = ", ".join(f"{v:.0f}" for v in detection.box_px)
        where = _where(by_index.get(index))
        lines.append(f"  {detection.label or 'object'}  [{box}]  {where}".rstrip())
    others = [b for b in value.bearings if b.detection_index < 0]
    if others:
        lines.append("bearings:")
        lines.extend(f"  {b.label or 'object'}  {_where(b)}" for b in others)
    lines.extend(f"warning: {warning}" for warning in value.warnings)
    if value.unknown_words:
        lines.append(f"words this model does not know: {', '.join(value.unknown_words)}")
    if value.task:
        lines.append(f"task: {value.task}")
    if value.latency_s:
        stages = ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in value.latency_s)
        lines.append(f"latency: {stages}")
    if value.model_id:
        lines.append(f"model: {value.model_id}")
    return "\n".join(lines)


def _where(bearing: Any) -> str:
    if bearing is None or bearing.side is None or math.isnan(bearing.azimuth_deg):
        return "direction unknown"
    return f"{bearing.side.value} {abs(bearing.azimuth_deg):.1f} deg"


def as_json(value: AnswerValue) -> Any:
    """Return the answer as JSON-ready data (enums by value, NaN as null)."""

    def plain(item: Any) -> Any:
        if isinstance(item, Enum):
            return item.value
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [plain(v) for v in item]
        return item

    return plain(asdict(value))
