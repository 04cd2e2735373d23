"""``mm-ros demo`` end to end: router, sim_world, adapters and model_service as processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_asks_questions_through_the_whole_graph(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mm_ros.cli.main",
            "demo",
            "--questions",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    for node in ("/sim_world", "/mm", "/camera_adapter", "/audio_adapter", "/imu_adapter"):
        assert f"'{node}'" in out
    assert "== Q1: what is on my left?" in out
    assert "== Q2: [grounding] where is the " in out
    assert "== Q3" not in out  # --questions 2
    assert out.count("latency: queue") == 2
    assert "truth: on the left:" in out
    assert "0 questions failed" in out
    for name in ("q1_spatial.png", "q2_grounding.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = {p.name for p in (tmp_path / "logs").iterdir()}
    assert {"sim_world.log", "model_service.log", "camera_adapter.log"} <= logs


def test_demo_no_images_writes_no_pictures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mm_ros.cli.main",
            "demo",
            "--questions",
            "1",
            "--no-images",
            "--in-process-adapters",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "/camera_adapter" not in proc.stdout  # adapters inside model_service
    assert not list(tmp_path.glob("*.png"))


class _NoBus:
    def create_subscription(self, *_args: object) -> None:
        return None


def _observer_with(truths: dict[int, dict]) -> object:
    from mm_ros.cli.demo_cmd import Observer

    observer = Observer(_NoBus())
    observer.truths.update(truths)
    return observer


def test_audio_question_waits_for_the_end_of_a_sound() -> None:
    from mm_ros.cli.demo_cmd import NS

    end = 10 * NS
    sound = {"sound": "clap", "onset_ns": end - NS // 2, "end_ns": end, "peak": 0.5}
    frames = {end + k * NS // 30: {"last_sound": sound} for k in range(-60, 30)}
    observer = _observer_with(frames)
    # newest frame 0.2 s after the end: the newest stamp inside [end - 0.1 s, end + 0.25 s)
    found = observer.after_sound(end + NS // 5)
    assert found is not None
    assert end - NS // 10 <= found <= end + NS // 5
    assert observer.after_sound(end - NS // 2) is None  # the sound is still far from its end
    assert observer.after_sound(end + 2 * NS) is None  # too long ago for "just heard"


def test_motion_question_waits_for_steady_motion() -> None:
    from mm_ros.cli.demo_cmd import NS

    frames = {k * NS // 30: {"motion": "still" if k < 60 else "walking forward"} for k in range(90)}
    observer = _observer_with(frames)
    assert observer.steady_motion(70 * NS // 30) is None  # changed 1/3 s ago
    assert observer.steady_motion(89 * NS // 30) == 89 * NS // 30  # held for 0.97 s
    assert observer.steady_motion(NS // 10) is None  # less than half a second in hand


def test_grounding_question_waits_for_the_red_cube() -> None:
    from mm_ros.cli.demo_cmd import NS

    def truth(shown: float, box: list[float] | None) -> dict:
        cube = {"name": "red cube", "in_view": box is not None, "box_px": box,
                "visible_fraction": shown}  # fmt: skip
        ball = {"name": "green ball", "in_view": True, "box_px": [400.0, 200.0, 460.0, 260.0],
                "visible_fraction": 1.0}  # fmt: skip
        return {"objects": [cube, ball]}

    cases = [
        (0.0, None),  # out of view
        (0.9, [0.0, 266.0, 4.0, 366.0]),  # a sliver at the edge
        (0.4, [300.0, 200.0, 360.0, 260.0]),  # mostly hidden
        (0.8, [300.0, 200.0, 360.0, 260.0]),  # in view
    ]
    step = NS // 10
    frames = {}
    for i, (shown, box) in enumerate(cases):  # each case held for one second, 10 truths
        frames.update({i * NS + k * step: truth(shown, box) for k in range(10)})
    observer = _observer_with(frames)
    for i in range(3):
        assert observer.showing(i * NS + 9 * step) is None
    assert observer.showing(3 * NS + 4 * step) is None  # in view for less than half a second
    assert observer.showing(3 * NS + 9 * step) == 3 * NS + 9 * step
    assert observer.showing(3 * NS + 9 * step, "green ball") == 3 * NS + 9 * step
    assert observer.showing(5 * NS) is None  # no truth in the half second before


def _image(stamp_ns: int) -> object:
    from types import SimpleNamespace

    from mm_ros.cli.demo_cmd import NS

    header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp_ns // NS, nanosec=stamp_ns % NS))
    return SimpleNamespace(header=header)


def test_a_pinned_question_keeps_its_frames_and_a_missed_frame_falls_back() -> None:
    from mm_ros.cli.demo_cmd import NS, PICTURE_GAP_NS

    observer = _observer_with({})
    period = NS // 30
    asked = 10 * period
    observer.pin(asked)
    for k in range(300):  # 10 s of frames while a slow answer is being made
        if k != 10:  # the best-effort subscription missed the frame the answer used
            observer._on_image(_image(k * period))
    assert asked - NS // 2 <= min(observer.frames)  # older frames went
    assert len(observer.frames) <= 90 + 31  # the newest 90 plus the pinned second
    stamp, _ = observer.frame_near(asked, PICTURE_GAP_NS)
    assert abs(stamp - asked) == period  # a neighbour of the missed frame
    observer.pin(None)
    observer._on_image(_image(300 * period))
    assert len(observer.frames) == 90  # unpinned: only the newest are kept
    assert observer.frame_near(asked, PICTURE_GAP_NS) is None


def test_grounding_asks_about_an_object_training_would_box() -> None:
    from mm_ros.cli.demo_cmd import SCRIPT, _phrase

    def obj(name: str, box: list[float], shown: float) -> dict:
        return {"name": name, "box_px": box, "visible_fraction": shown, "in_view": True}

    sliver = obj("red cube", [0.0, 266.0, 4.0, 366.0], 0.9)  # 4 px wide at the left edge
    cone = obj("blue cone", [150.0, 256.0, 204.0, 318.0], 0.7)
    ball = obj("green ball", [400.0, 200.0, 460.0, 260.0], 1.0)
    half_hidden = obj("red cube", [300.0, 200.0, 360.0, 260.0], 0.4)
    whole = obj("red cube", [300.0, 200.0, 360.0, 260.0], 0.8)
    grounding = SCRIPT[1]

    def target(*objects: dict) -> str:
        return _phrase(grounding, {"objects": list(objects)}).text

    assert target(sliver, cone, ball) == "[grounding] where is the green ball?"
    assert target(half_hidden, cone) == "[grounding] where is the blue cone?"
    assert target(whole, ball) == "[grounding] where is the red cube?"
    assert target(sliver) == "[grounding] where is the red cube?"  # nothing better in view
    assert target() == "[grounding] where is the red cube?"


def test_each_answer_is_judged_against_the_truth_of_its_frame() -> None:
    from mm_ros.cli.demo_cmd import SCRIPT, _matches, _phrase
    from mm_ros.core.answers import AnswerValue, Detection

    spatial, grounding, audio, motion = SCRIPT[:4]
    cube = {"name": "red cube", "box_px": [100.0, 250.0, 150.0, 300.0], "side": "left",
            "in_view": True, "visible_fraction": 1.0}  # fmt: skip
    cone = {"name": "blue cone", "box_px": [400.0, 250.0, 450.0, 300.0], "side": "right",
            "in_view": True, "visible_fraction": 1.0}  # fmt: skip
    truth = {"objects": [cube, cone], "last_sound": {"sound": "beep"}, "motion": "walking forward"}

    def said(text: str, *boxes: tuple[float, float, float, float]) -> AnswerValue:
        return AnswerValue(
            "q", "vqa", text=text, detections=tuple(Detection("red cube", b) for b in boxes)
        )

    assert _matches(spatial, truth, said("the red cube."))
    assert not _matches(spatial, truth, said("the red cube and the blue cone."))
    assert not _matches(spatial, truth, said("nothing."))
    assert _matches(spatial, {**truth, "objects": [cone]}, said("nothing."))
    asked = _phrase(grounding, truth)
    assert _matches(asked, truth, said("red cube", (102.0, 252.0, 150.0, 298.0)))
    assert not _matches(asked, truth, said("red cube", (400.0, 250.0, 450.0, 300.0)))  # the cone
    assert not _matches(asked, truth, said("red cube"))  # no box
    assert _matches(audio, truth, said("i heard a beep."))
    assert not _matches(audio, {**truth, "last_sound": None}, said("i heard a beep."))
    assert _matches(motion, truth, said("you are walking forward."))
    assert not _matches(motion, truth, said("you are standing still."))
