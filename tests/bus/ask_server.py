"""A small Ask action server for CLI tests (a collaborator: the real service is the `mm` node).

In-process: ``serve(bus, behaviour)``. As a process (to be killed mid-goal):
``python -m tests.bus.ask_server ENDPOINT BEHAVIOUR`` prints ``ready`` and ``executing``.
Behaviours: ``answer`` streams three feedbacks and answers with one detection; ``error``
answers with an error; ``hang`` sends one feedback and never ends (until ``release`` is set).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from mm_ros.core.answers import AnswerValue, Detection, ImageRef, ObjectBearing
from mm_ros.core.sensors import Side
from mm_ros.nodes import convert

PARTIALS = ("a", "a red", "a red cube on your left")


def answer_for(request: Any) -> AnswerValue:
    return AnswerValue(
        question=str(request.question),
        task=str(request.task) or "vqa",
        text=PARTIALS[-1],
        raw_text="a <p>red cube</p> {<5><10><30><40>} on your left",
        detections=(Detection("red cube", (32.0, 48.0, 192.0, 192.0)),),
        bearings=(ObjectBearing("red cube", 0, 24.5, 6.0, Side.LEFT),),
        image=ImageRef(1_000_000_000, "camera_optical", 640, 480),
        modalities=tuple(str(m) for m in request.modalities) or ("image",),
        stamp_ns=1_000_000_000,
        frame_id="camera_optical",
        latency_s=(("prefill", 0.012), ("total", 0.25)),
        prompt_tokens=70,
        generated_tokens=7,
        model_id="mm-tiny@test",
        unknown_words=tuple(w for w in str(request.question).split() if w.startswith("zorb")),
    )


def serve(
    bus: Any,
    behaviour: str,
    name: str = "/mm/ask",
    release: threading.Event | None = None,
    *,
    announce: bool = False,
) -> list[Any]:
    """Serve ``name``; return the list the goals it receives are appended to.

    ``announce`` prints ``executing`` once a goal runs (a hanging one after its feedback).
    """
    goals: list[Any] = []

    def execute(goal: Any) -> dict[str, Any]:
        goals.append(goal.request)
        if behaviour == "hang":
            goal.publish_feedback({"partial_text": "thinking", "stage": "prefill"})
            if announce:
                print("executing", flush=True)
            (release or threading.Event()).wait()
            return {"answer": convert.answer(AnswerValue("", "", error="released"))}
        if behaviour == "error":
            failed = AnswerValue(str(goal.request.question), "vqa", error="timeout: 5 s")
            return {"answer": convert.answer(failed)}
        for count, text in enumerate(PARTIALS, start=1):
            goal.publish_feedback(
                {"partial_text": text, "generated_tokens": count, "stage": "generating"}
            )
        return {"answer": convert.answer(answer_for(goal.request))}

    bus.create_action_server(name, "mm_ros/action/Ask", execute)
    return goals


def main() -> None:
    from mm_ros.bus.protocol import BusConfig
    from mm_ros.bus.zenoh_bus import ZenohBus

    endpoint, behaviour = sys.argv[1], sys.argv[2]
    with ZenohBus("mm", config=BusConfig(connect=(endpoint,))) as bus:
        serve(bus, behaviour, announce=True)
        print("ready", flush=True)
        bus.spin()


if __name__ == "__main__":
    main()
