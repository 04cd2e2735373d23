"""``mm-ros ask`` against an Ask action server over the real zenoh bus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mm_ros.cli.main import main
from tests.bus.ask_server import PARTIALS, serve

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "what is on my left?"


def ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_streams_then_prints_answer_boxes_and_latency(
    router: str, make_zenoh, capsys: pytest.CaptureFixture[str]
) -> None:
    goals = serve(make_zenoh("mm"), "answer")
    code, out, err = ask(
        capsys,
        QUESTION,
        "--task",
        "grounding",
        "--modalities",
        "image, imu",
        "--window",
        "2.5",
        "--max-new-tokens",
        "32",
        "--timeout",
        "20",
        "--stream",
        "--connect",
        router,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == PARTIALS[-1]  # the stream, grown in place
    assert lines[1:] == [
        PARTIALS[-1],
        "boxes (source-image pixels of camera_optical):",
        "  red cube  [32, 48, 192, 192]  left 24.5 deg",
        "task: grounding",
        "latency: prefill 12 ms, total 250 ms",
        "model: mm-tiny@test",
    ]
    (request,) = goals
    assert request.question == QUESTION
    assert request.task == "grounding"
    assert list(request.modalities) == ["image", "imu"]
    assert (request.window_s, request.timeout_s, request.max_new_tokens) == (2.5, 20.0, 32)


def test_prints_the_words_the_model_does_not_know(
    router: str, make_zenoh, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(make_zenoh("mm"), "answer")
    code, out, err = ask(capsys, "where is the zorblax now?", "--connect", router)
    assert code == 0, err
    assert "words this model does not know: zorblax" in out.splitlines()
    assert "task: vqa" in out.splitlines()


def test_json_prints_the_answer_value(
    router: str, make_zenoh, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(make_zenoh("mm"), "answer")
    code, out, err = ask(capsys, QUESTION, "--json", "--stream", "--connect", router)
    assert code == 0, err
    value = json.loads(out)  # the stream went to stderr, stdout is JSON only
    assert err.startswith(PARTIALS[-1])
    assert value["text"] == PARTIALS[-1]
    assert value["detections"] == [
        {"label": "red cube", "box_px": [32.0, 48.0, 192.0, 192.0], "score": 1.0}
    ]
    assert value["bearings"][0]["side"] == "left"
    assert value["bearings"][0]["azimuth_deg"] == 24.5
    assert value["image"]["frame_id"] == "camera_optical"
    assert value["latency_s"] == [["prefill", 0.012], ["total", 0.25]]
    assert value["model_id"] == "mm-tiny@test"
    assert value["error"] == ""


def test_answer_with_an_error_exits_1(
    router: str, make_zenoh, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(make_zenoh("mm"), "error")
    code, out, err = ask(capsys, QUESTION, "--connect", router)
    assert (code, out) == (1, "")
    assert "mm-ros ask: timeout: 5 s" in err
    code, out, err = ask(capsys, QUESTION, "--json", "--connect", router)
    assert code == 1
    assert json.loads(out)["error"] == "timeout: 5 s"


def test_no_server_exits_1(router: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = ask(capsys, QUESTION, "--timeout", "1", "--connect", router)
    assert code == 1
    assert "no action server /mm/ask on the bus" in err


def test_no_answer_in_time_exits_1(
    router: str, make_zenoh, capsys: pytest.CaptureFixture[str]
) -> None:
    release = threading.Event()
    serve(make_zenoh("mm"), "hang", name="/robot/mm/ask", release=release)
    try:
        code, out, err = ask(
            capsys, QUESTION, "--action", "/robot/mm/ask", "--timeout", "1", "--connect", router
        )
    finally:
        release.set()
    assert code == 1
    assert out == ""
    assert "mm-ros ask: no answer from /robot/mm/ask within 1 s" in err


def test_server_process_dying_mid_goal_ends_the_wait(
    router: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bus.ask_server", router, "hang"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    killed = threading.Event()

    def kill_when_executing() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            if line.strip() == "executing":
                server.kill()
                killed.set()
                return

    watcher = threading.Thread(target=kill_when_executing, daemon=True)
    watcher.start()
    try:
        code, _out, err = ask(capsys, QUESTION, "--timeout", "30", "--connect", router)
    finally:
        server.kill()
        server.wait(timeout=10)
    assert killed.is_set()
    assert code == 1
    assert "mm-ros ask: action server /mm/ask went away" in err


def test_server_dying_before_it_answers_the_goal_request_went_away(
    router: str, make_zenoh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server took the goal and died before its reply left (CI once killed it there)."""
    from mm_ros.bus.protocol import BusTimeoutError
    from mm_ros.bus.zenoh_actions import ZenohActionClient

    server = make_zenoh("mm")
    serve(server, "answer")

    def dies_while_sending(self: ZenohActionClient, *args: object, **kwargs: object) -> None:
        server.close()
        raise BusTimeoutError("service /mm/ask/_action/send_goal gave no answer within 10 s")

    monkeypatch.setattr(ZenohActionClient, "send_goal", dies_while_sending)
    code, _out, err = ask(capsys, QUESTION, "--timeout", "30", "--connect", router)
    assert code == 1
    assert err == "mm-ros ask: action server /mm/ask went away\n"


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["  "], "expected a question"),
        ([QUESTION, "--task", "poem"], "--task must be one of vqa, caption"),
        ([QUESTION, "--modalities", "image,smell"], "found smell"),
        ([QUESTION, "--window", "-1"], "--window must be >= 0 s"),
        ([QUESTION, "--timeout", "0"], "--timeout must be > 0 s"),
        ([QUESTION, "--timeout", "nan"], "--timeout must be > 0 s"),
        ([QUESTION, "--max-new-tokens", "-5"], "--max-new-tokens must be >= 0"),
    ],
)
def test_bad_usage_exits_2_before_touching_the_bus(
    argv: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ask(capsys, *argv, "--connect", "tcp/127.0.0.1:1")
    assert (code, out) == (2, "")
    assert text in err


def test_unparsable_number_is_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ask", QUESTION, "--timeout", "soon"])
    assert exit_info.value.code == 2


def test_stream_catches_up_when_the_result_overtakes_feedback() -> None:
    import io
    from types import SimpleNamespace

    from mm_ros.cli.ask_cmd import StreamPrinter

    out = io.StringIO()
    printer = StreamPrinter(out)
    printer.feedback(SimpleNamespace(partial_text="a red"))
    printer.end("a red cube on your left")  # the result came before the last feedback
    printer.feedback(SimpleNamespace(partial_text="a red cube"))  # late: dropped
    assert out.getvalue() == "a red cube on your left\n"
