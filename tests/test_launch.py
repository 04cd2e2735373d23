"""Launch files: parsing with precise errors, expansion, shipped files, running, respawn."""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_ros.cli.executables import EXECUTABLES
from mm_ros.launching.context import expand, package_share
from mm_ros.launching.description import LaunchFileError, load

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.yaml"))
EXECS = set(EXECUTABLES)


def write(tmp_path: Path, text: str, name: str = "t.launch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def node_parameters(exe: str) -> set[str]:
    module = importlib.import_module(EXECUTABLES[exe].split(":")[0])
    nodes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and hasattr(v, "Config") and v.__module__ == module.__name__
    ]
    # the node name may differ from the executable's (model_service runs as node `mm`)
    node_class = next((v for v in nodes if getattr(v, "name", None) == exe), nodes[0])
    return {f.name for f in dataclasses.fields(node_class.Config)} | {"use_sim_time"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_shipped_launch_files_are_consistent(path: Path) -> None:
    specs = expand(path, {}, executables=EXECS)
    assert specs
    for spec in specs:
        args = list(spec.command)
        exe = args[args.index("run") + 1]
        assert exe in EXECS
        declared = node_parameters(exe)
        for i, token in enumerate(args):
            if token == "-p":
                assert args[i + 1].split(":=")[0] in declared, (spec.where, args[i + 1])
            if token == "--params-file":
                assert Path(args[i + 1]).is_file()


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_launch_runs_respawns_and_stops_without_orphans(tmp_path: Path) -> None:
    from tests.bus.conftest import free_port

    endpoint = f"tcp/127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mm_ros.cli.main",
            "launch",
            "demo.launch.yaml",
            "--connect",
            endpoint,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    started: dict[str, list[int]] = {}
    lines: list[str] = []
    assert proc.stdout is not None

    def read_until(predicate, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, "\n".join(lines[-20:])
            line = proc.stdout.readline()
            lines.append(line.rstrip())
            match = re.search(r"started (\S+)-\d+ \(pid (\d+)\)", line)
            if match:
                started.setdefault(match.group(1), []).append(int(match.group(2)))

    try:
        read_until(lambda: {"sim_world", "sensor_monitor"} <= set(started), 30)
        read_until(lambda: any("sensor_monitor" in x and "bus:" in x for x in lines), 30)
        first = started["sim_world"][0]
        os.kill(first, signal.SIGKILL)  # respawn: back within 5 s
        t0 = time.monotonic()
        read_until(lambda: len(started["sim_world"]) == 2, 10)
        assert time.monotonic() - t0 < 5
        children = [pids[-1] for pids in started.values()]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "all processes stopped" in rest
    assert not [pid for pid in children if _alive(pid)]
