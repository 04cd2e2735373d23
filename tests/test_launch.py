"""Launch files: parsing with precise errors, expansion, shipped files, running, respawn.

Also the distributed deployment: adapter nodes in processes of their own feeding a model
service over the bus give the same answer as a model service that encodes in-process.
"""

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

from mm_ros.bus.ros_args import (
    checked_parameter,
    load_params_file,
    parameter_overrides,
    parse_ros_args,
)
from mm_ros.cli.executables import EXECUTABLES
from mm_ros.launching.context import expand, package_share
from mm_ros.launching.description import LaunchFileError, load

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


EXPANSIONS = [(p, {}) for p in [*LAUNCH_FILES, *PARTS]] + [
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


