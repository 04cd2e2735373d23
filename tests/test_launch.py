"""Launch files: parsing with precise errors, expansion, shipped files, running, respawn.

Also the distributed deployment: adapter nodes in processes of their own feeding a model
service over the bus give the same answer as a model service that encodes in-process.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from mm_ros.bus import LATCHED, SENSOR_DATA
from mm_ros.bus.protocol import GoalStatus
from mm_ros.bus.ros_args import (
    checked_parameter,
    load_params_file,
    parameter_overrides,
    parse_ros_args,
)
from mm_ros.cli.executables import EXECUTABLES
from mm_ros.launching.context import expand, package_share
from mm_ros.launching.description import LaunchFileError, load
from tests.bus.conftest import free_port, make_zenoh, router  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from collections.abc import Callable

NS = 1_000_000_000
REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.yaml"))
PARTS = sorted((REPO / "launch" / "parts").glob("*.launch.yaml"))
EXECS = set(EXECUTABLES)


def write(tmp_path: Path, text: str, name: str = "t.launch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def node_class(exe: str) -> type:
    """The node class an executable runs (its ``name`` is the default node name, e.g. ``mm``)."""
    module = importlib.import_module(EXECUTABLES[exe].split(":")[0])
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and v.__module__ == module.__name__ and hasattr(v, "Config")
    ]
    named = [c for c in classes if getattr(c, "name", None) == exe]
    (found,) = named or classes
    return found


def node_parameters(exe: str) -> dict[str, object]:
    """Declared parameters of an executable's node, with their defaults."""
    fields = dataclasses.fields(node_class(exe).Config)
    return {f.name: f.default for f in fields} | {"use_sim_time": False}


REQUIRED_ARGS = {"replay.launch.yaml": {"bag": "recorded/run1"}}  # args without a usable default
EXPANSIONS = [(p, REQUIRED_ARGS.get(p.name, {})) for p in [*LAUNCH_FILES, *PARTS]] + [
    (REPO / "launch" / "distributed.launch.yaml", {"role": role})
    for role in ("sensors", "model", "all")
]


@pytest.mark.parametrize(
    ("path", "arguments"),
    EXPANSIONS,
    ids=[f"{p.parent.name}/{p.name}{''.join(f'-{v}' for v in a.values())}" for p, a in EXPANSIONS],
)
def test_shipped_launch_files_are_consistent(path: Path, arguments: dict[str, str]) -> None:
    """Every exec exists; every parameter (-p or params file) is declared and of its type."""
    specs = expand(path, arguments, executables=EXECS)
    assert specs
    for spec in specs:
        exe = spec.command[spec.command.index("run") + 1]
        assert exe in EXECS
        args = parse_ros_args(list(spec.command[spec.command.index("--ros-args") :]))
        assert all(f.is_file() for f in args.params_files)
        declared = node_parameters(exe)
        node = f"{args.namespace or ''}/{args.node_name or node_class(exe).name}"
        overrides = parameter_overrides(args, node)
        assert set(overrides) <= set(declared), (spec.where, set(overrides) - set(declared))
        for name, value in overrides.items():
            checked_parameter(name, declared[name], {name: value}, node)  # raises on a bad type
        node_class(exe).Config(**{k: v for k, v in overrides.items() if k != "use_sim_time"})


def test_distributed_roles_split_the_graph() -> None:
    def processes(role: str) -> dict[str, tuple[str, ...]]:
        specs = expand(
            REPO / "launch" / "distributed.launch.yaml",
            {"role": role, "namespace": "r1"},
            executables=EXECS,
        )
        return {s.command[s.command.index("run") + 1]: s.command for s in specs}

    sensors, model, both = processes("sensors"), processes("model"), processes("all")
    assert set(sensors) == {"camera_adapter", "audio_adapter", "imu_adapter", "sensor_monitor"}
    assert set(model) == {"model_service"}
    assert set(both) == set(sensors) | set(model)
    assert "remote_modalities:=image,audio,imu" in model["model_service"]
    assert all("__ns:=/r1" in command for command in both.values())
    with pytest.raises(LaunchFileError, match=r"parts/gpu\.launch\.yaml does not exist"):
        processes("gpu")


def test_model_service_params_file_lists_the_defaults() -> None:
    """config/model_service.yaml documents every parameter but the topics, at its default."""
    values = load_params_file(REPO / "config" / "model_service.yaml", "/mm")
    declared = node_parameters("model_service")
    topics = {k for k in declared if k.endswith(("_topic", "_transport", "_layout"))}
    assert set(values) == (set(declared) - topics - {"use_sim_time"}) | {"diagnostics_topic"}
    assert values == {k: declared[k] for k in values}


def test_expansion_of_args_groups_namespaces_includes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MM_TEST_SEED", "42")
    inner = write(
        tmp_path,
        """launch:
- arg: {name: who, default: inner}
- node: {pkg: mm_ros, exec: sim_world, name: $(var who)}
""",
        "inner.launch.yaml",
    )
    outer = write(
        tmp_path,
        f"""launch:
- arg: {{name: ns, default: robot}}
- let: {{name: seed, value: $(env MM_TEST_SEED 0)}}
- group:
  - push_ros_namespace: {{namespace: $(var ns)}}
  - node:
      pkg: mm_ros
      exec: sim_world
      namespace: cams
      param:
      - {{name: seed, value: $(var seed)}}
      remap:
      - {{from: camera/image_raw, to: /image}}
  - include:
      file: {inner}
      arg:
      - {{name: who, value: included}}
- node: {{pkg: mm_ros, exec: sensor_monitor, respawn: "true", respawn_delay: "2"}}
""",
    )
    specs = expand(outer, {"ns": "/fleet/r1"}, executables=EXECS)
    commands = [" ".join(s.command[3:]) for s in specs]
    assert commands[0] == (
        "run sim_world --ros-args -r __ns:=/fleet/r1/cams -p seed:=42 -r camera/image_raw:=/image"
    )
    assert commands[1] == "run sim_world --ros-args -r __node:=included -r __ns:=/fleet/r1"
    assert commands[2] == "run sensor_monitor --ros-args"  # group scope ended: no namespace
    assert specs[2].respawn
    assert specs[2].respawn_delay_s == 2.0
    assert str(package_share()) == str(REPO)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "launch:\n- node: {pkg: mm_ros, exec: sim_world}\n- nodes: {pkg: x}\n",
            r"t\.launch\.yaml:3: unknown tag 'nodes'",
        ),
        (
            "launch:\n- node:\n    pkg: mm_ros\n    exec: sim_world\n    colour: red\n",
            r":2: tag 'node' has unknown attribute\(s\) \['colour'\]",
        ),
        ("launch:\n- arg: {default: 1}\n", r":2: tag 'arg' needs \['name'\]"),
        ("launch:\n- node: {pkg: mm_ros, exec: sim_world, output: loud}\n", "output must be"),
        ("nolaunch: []\n", "top-level 'launch:'"),
        ("launch: [unclosed\n", "not valid YAML"),
    ],
)
def test_malformed_files_name_file_line_and_tag(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(LaunchFileError, match=match):
        load(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "args", "match"),
    [
        ("launch:\n- node: {pkg: demo_nodes_cpp, exec: talker}\n", {}, "only mm_ros"),
        ("launch:\n- node: {pkg: mm_ros, exec: talker}\n", {}, "not an mm_ros executable"),
        (
            "launch:\n- node: {pkg: mm_ros, exec: sim_world, name: $(var x)}\n",
            {},
            r"\$\(var x\) is not set",
        ),
        ("launch:\n- arg: {name: x}\n", {}, "has no default"),
        ("launch:\n- arg: {name: x, default: 1}\n", {"y": "2"}, r"unknown launch argument"),
        (
            "launch:\n- node:\n    pkg: mm_ros\n    exec: sim_world\n    param:\n"
            "    - {from: /no/such.yaml}\n",
            {},
            "does not exist",
        ),
    ],
)
def test_bad_expansion(tmp_path: Path, text: str, args: dict, match: str) -> None:
    with pytest.raises(LaunchFileError, match=match):
        expand(write(tmp_path, text), args, executables=EXECS)


# -- running launch files ------------------------------------------------------------------------

WAIT_S = 60.0  # generous: model loading on a loaded 2-core machine
STARTED = re.compile(r"\[launch\] started (\S+)-\d+ \(pid (\d+)\)")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny model built once (no cache folder of the user is touched)."""
    from mm_ros.llm.tiny import build_random_default

    return build_random_default(tmp_path_factory.mktemp("model") / "tiny", seed=0)


class Launch:
    """``mm-ros launch`` as a subprocess; its output is read on a thread so waits time out."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mm_ros.cli.main", "launch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=dict(os.environ, MM_ROS_CACHE=str(cwd / "cache")),
        )
        self.lines: list[str] = []
        self.started: dict[str, list[int]] = {}
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip())
                match = STARTED.search(line)
                if match:
                    self.started.setdefault(match.group(1), []).append(int(match.group(2)))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
        """Wait until ``predicate()`` holds (checked on every new output line)."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: predicate() or not self._reader.is_alive(), timeout_s
            )
            if not (ok and predicate()):
                tail = "\n".join(self.lines[-30:])
                raise AssertionError(f"launch: no {what} within {timeout_s:g} s:\n{tail}")

    def count(self, text: str) -> int:
        """Output lines containing ``text``."""
        with self._changed:
            return sum(text in line for line in self.lines)

    def stop(self) -> str:
        """SIGINT the launch (as Ctrl-C does) and return the rest of its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(timeout=5)
        return "\n".join(self.lines)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def mm_ros_ask(endpoint: str, question: str, *options: str) -> subprocess.CompletedProcess[str]:
    """``mm-ros ask --json`` as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mm_ros.cli.main",
            "ask",
            question,
            "--json",
            "--connect",
            endpoint,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )


def test_demo_launch_answers_respawns_the_model_service_and_stops_cleanly(
    tmp_path: Path, model_dir: Path
) -> None:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    launch = Launch(tmp_path, "demo.launch.yaml", f"model_dir:={model_dir}", "--connect", endpoint)
    ready = "model_service ready"
    try:
        launch.wait(lambda: {"sim_world", "sensor_monitor", "mm"} <= set(launch.started), "nodes")
        assert launch.count(f"on {endpoint}") == 1  # none was listening: it started a router
        assert launch.count("Zenoh router") == 1
        launch.wait(lambda: launch.count(ready) == 1, "model service")
        asked = mm_ros_ask(endpoint, "[vqa] what is in front of me?", "--max-new-tokens", "4")
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)
        assert answer["error"] == ""
        assert "image" in answer["modalities"]  # sim_world's frames reached the service

        os.kill(launch.started["mm"][0], signal.SIGKILL)
        killed = time.monotonic()
        # Asked while it is down (the respawn waits 1 s, loading takes longer): an error, fast.
        down = mm_ros_ask(endpoint, "what is on my left?", "--timeout", "1")
        assert down.returncode == 1, down.stdout
        # On a loaded machine `mm-ros ask` can take longer to start than the respawn: then the
        # new model_service has its action server but is not active yet, and says so.
        assert "no action server /mm/ask" in down.stderr or "not active" in down.stderr
        launch.wait(lambda: len(launch.started["mm"]) == 2, "respawn", timeout_s=15)
        # respawn_delay is 1 s (no back-off on a first death); the margin is for a loaded machine
        assert time.monotonic() - killed < 10
        assert launch.count(ready) == 1  # the down-time question really met no server
        launch.wait(lambda: launch.count(ready) == 2, "respawned model service")
        again = mm_ros_ask(endpoint, "what is on my left?", "--max-new-tokens", "4")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["error"] == ""
        children = [pids[-1] for pids in launch.started.values()]
    finally:
        output = launch.stop()
    assert launch.proc.returncode == 0, output
    assert "all processes stopped" in output
    assert not [pid for pid in children if _alive(pid)]


# -- distributed = in-process --------------------------------------------------------------------

T_NS = 1_000 * NS  # the newest stamp of every sensor stream below
SENSORS = "/sensors"
TOPICS = {
    "image": f"{SENSORS}/camera/image_raw",
    "camera_info": f"{SENSORS}/camera/camera_info",
    "imu": f"{SENSORS}/imu/data",
    "audio": f"{SENSORS}/audio/audio_stamped",
    "audio_info": f"{SENSORS}/audio/audio_info",
}


def service_args(namespace: str, model_dir: Path, **params: str) -> list[str]:
    args = ["--ros-args", "-r", f"__ns:={namespace}"]
    common = {"model_dir": str(model_dir), "runtimes": "torch", "max_new_tokens": "8"}
    for name, value in {**common, **params}.items():
        args += ["-p", f"{name}:={value}"]
    return args


def publish_fixed_inputs(feeder: Any, end_ns: int = T_NS) -> None:
    """One frame + CameraInfo, 0.4 s of audio and 1.2 s of IMU, each stream's newest at end_ns."""
    from mm_ros.core.audio import encode_audio_ros_drivers
    from mm_ros.core.camera import encode_camera_info
    from mm_ros.core.images import encode_image
    from mm_ros.core.imu import encode_imu
    from mm_ros.core.sensors import AudioChunk, CameraModel, Frame, ImuSample, PixelFormat
    from mm_ros.nodes import convert

    rng = np.random.default_rng(7)
    kinds = {
        "image": "sensor_msgs/msg/Image",
        "camera_info": "sensor_msgs/msg/CameraInfo",
        "imu": "sensor_msgs/msg/Imu",
        "audio": "audio_common_msgs/msg/AudioDataStamped",
    }
    pubs = {k: feeder.create_publisher(TOPICS[k], t, SENSOR_DATA) for k, t in kinds.items()}
    info_pub = feeder.create_publisher(
        TOPICS["audio_info"], "audio_common_msgs/msg/AudioInfo", LATCHED
    )

    def publish(kind: str, message: dict[str, Any]) -> None:
        pubs[kind].publish(message)
        # Best-effort subscriptions keep 5 messages when a callback lags (an adapter node
        # encodes on the same thread): pace the stream so every subscriber gets every message.
        time.sleep(0.04)

    chunks = [
        AudioChunk(end_ns - (4 - i) * NS // 10, 16_000, rng.uniform(-0.5, 0.5, (1600, 1)))
        for i in range(4)
    ]  # 4 x 100 ms, the last one ending at end_ns (the audio window's newest stamp is its end)
    for i, chunk in enumerate(chunks):
        stamped, info = convert.audio_ros_drivers(
            encode_audio_ros_drivers(chunk), chunk.stamp_ns, "mic"
        )
        if i == 0:
            info_pub.publish(info)
        publish("audio", stamped)
    for k in range(6, -1, -1):  # 5 Hz over 1.2 s; the adapter resamples to its own rate
        a, g = rng.normal(0, 1, 3), rng.normal(0, 0.3, 3)
        stamp = end_ns - k * NS // 5
        sample = ImuSample(stamp, "imu", (a[0], a[1], 9.81 + a[2]), (g[0], g[1], g[2]), None)
        publish("imu", convert.imu(encode_imu(sample), stamp, "imu"))
    camera = CameraModel(64, 48, (50.0, 0, 32.0, 0, 50.0, 24.0, 0, 0, 1.0), "plumb_bob", (0.0,) * 5)
    publish("camera_info", convert.camera_info(encode_camera_info(camera), end_ns, "cam"))
    pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = Frame(end_ns, "cam", pixels, PixelFormat.RGB8)
    publish("image", convert.image(encode_image(frame), end_ns, "cam"))


def local_and_remote_tokens(local: Any, remote: Any) -> dict[str, tuple[Any, Any]]:
    """Per modality: tokens from the adapter node, and the in-process encoding of the same data."""
    from mm_ros.llm.service import Query, block_source

    engine = local.core.engine
    snapshot = local.inputs.windows.snapshot(T_NS, engine.spans_ns(Query("?")))
    out = {}
    for modality, block in remote.core._remote_blocks(T_NS).items():
        found = block_source(modality, engine.backend.sessions[modality], snapshot)
        assert found is not None, modality
        out[modality] = (block.tokens, found[1]().tokens)
    return out


def test_adapters_in_their_own_processes_answer_like_in_process_adapters(
    tmp_path: Path,
    model_dir: Path,
    router: str,  # noqa: F811 - the fixture
    make_zenoh: Callable[..., Any],  # noqa: F811 - the fixture
) -> None:
    from mm_ros.bus.zenoh_bus import wait_until
    from mm_ros.nodes.model_service_node import ModelServiceNode

    topics = {
        "image_topic": TOPICS["image"],
        "camera_info_topic": TOPICS["camera_info"],
        "imu_topic": TOPICS["imu"],
        "audio_topic": TOPICS["audio"],
        "audio_info_topic": TOPICS["audio_info"],
    }
    local = ModelServiceNode(make_zenoh("mm", service_args("/local", model_dir, **topics)))
    local.start()
    # The remote service sees no raw sensor topic (its own are /remote/...): only embeddings.
    remote = ModelServiceNode(
        make_zenoh(
            "mm",
            service_args(
                "/remote",
                model_dir,
                remote_modalities="image,audio,imu",
                camera_info_topic=TOPICS["camera_info"],
            ),
        )
    )
    remote.start()
    sensors = Launch(
        tmp_path,
        "distributed.launch.yaml",
        "role:=sensors",
        "namespace:=remote",
        f"model_dir:={model_dir}",
        "runtimes:=torch",
        *(f"{name}:={topic}" for name, topic in TOPICS.items()),
        "--connect",
        router,
    )
    try:
        adapters = ("camera_adapter", "audio_adapter", "imu_adapter")
        launch_ready = lambda: all(sensors.count(f"{a}: ") for a in adapters)  # noqa: E731
        sensors.wait(launch_ready, "adapters loaded")
        assert sensors.count(f"using the router already listening on {router}") == 1
        feeder = make_zenoh("feeder")
        wait_until(
            lambda: all(
                feeder.count_subscribers(TOPICS[t]) >= 3 for t in ("image", "imu", "audio")
            ),
            WAIT_S,
            "adapters, local service and monitor subscribed",
        )
        newest = lambda: {m: b.stamp_ns for m, b in remote.core._remote_blocks(None).items()}  # noqa: E731
        # Warm-up data 100 s earlier: the adapters' first (slow) encodes happen on it, not
        # while the compared data streams in.
        publish_fixed_inputs(feeder, T_NS - 100 * NS)
        wait_until(
            lambda: newest() == dict.fromkeys(("image", "audio", "imu"), T_NS - 100 * NS),
            WAIT_S,
            "embeddings of the warm-up data",
        )
        publish_fixed_inputs(feeder)
        wait_until(
            lambda: all(c.newest_stamp_ns == T_NS for c in local.inputs.counters().values()),
            WAIT_S,
            "the in-process service's windows to reach T",
        )
        wait_until(
            lambda: newest() == dict.fromkeys(("image", "audio", "imu"), T_NS),
            WAIT_S,
            "embeddings of the newest data from all three adapter nodes",
        )
        assert all(c.newest_stamp_ns is None for c in remote.inputs.counters().values())
        client = make_zenoh("client")
        goal = {
            "question": "[vqa] what do you see, hear and feel?",
            "stamp": {"sec": T_NS // NS, "nanosec": T_NS % NS},
        }
        answers = {}
        for name in ("local", "remote"):
            action = client.create_action_client(f"/{name}/mm/ask", "mm_ros/action/Ask")
            assert action.wait_for_server(WAIT_S)
            status, result = action.send_goal(goal).result(WAIT_S)
            assert status == GoalStatus.SUCCEEDED, result.answer.error
            answers[name] = result.answer
        tokens = local_and_remote_tokens(local, remote)
    finally:
        output = sensors.stop()
        remote.close()
        local.close()
    assert sensors.proc.returncode == 0, output
    for modality, (theirs, ours) in tokens.items():  # the precise diagnosis if texts differ
        np.testing.assert_array_equal(theirs, ours, err_msg=f"{modality} tokens differ")
    a, b = answers["local"], answers["remote"]
    assert list(a.modalities) == list(b.modalities) == ["image", "audio", "imu"]
    assert b.raw_text == a.raw_text
    assert b.header.stamp == a.header.stamp


def test_a_service_with_every_modality_remote_never_encodes_raw_data(
    model_dir: Path,
    make_zenoh: Callable[..., Any],  # noqa: F811 - the fixture
) -> None:
    """All modalities remote: raw topics are not even subscribed; no embeddings, no sensors."""
    from mm_ros.bus.zenoh_bus import wait_until
    from mm_ros.nodes.model_service_node import ModelServiceNode

    topics = {f"{k}_topic": v for k, v in TOPICS.items()}  # image_topic, camera_info_topic, ...
    remote = ModelServiceNode(
        make_zenoh(
            "mm",
            service_args("/remote", model_dir, remote_modalities="image,audio,imu", **topics),
        )
    )
    remote.start()
    feeder = make_zenoh("feeder")
    try:
        # CameraInfo is still taken (bearings); raw frames, audio and IMU never reach this host
        wait_until(lambda: feeder.count_subscribers(TOPICS["camera_info"]) >= 1, WAIT_S, "sub")
        assert feeder.count_subscribers(TOPICS["image"]) == 0
        assert feeder.count_subscribers(TOPICS["imu"]) == 0
        assert feeder.count_subscribers(TOPICS["audio"]) == 0
        publish_fixed_inputs(feeder)
        action = make_zenoh("client").create_action_client("/remote/mm/ask", "mm_ros/action/Ask")
        assert action.wait_for_server(WAIT_S)
        status, result = action.send_goal({"question": "what is here?"}).result(WAIT_S)
        assert status == GoalStatus.SUCCEEDED, result.answer.error
        assert list(result.answer.modalities) == []
        goal = {"question": "what is here?", "modalities": ["image"]}
        status, result = action.send_goal(goal).result(WAIT_S)
        assert status == GoalStatus.ABORTED
        assert "no image data" in result.answer.error
    finally:
        remote.close()
