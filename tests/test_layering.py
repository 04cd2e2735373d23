"""Each layer, imported in a fresh interpreter, pulls in nothing DESIGN.md section 3 forbids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["rclpy", "zenoh", "torch", "tensorrt", "onnxruntime", "transformers"]
NO_BUS = ["rclpy", "zenoh", "mm_ros.bus"]
NO_RUNTIMES = [*NO_BUS, "tensorrt", "onnxruntime"]
FORBIDDEN = {
    "mm_ros.core": [*HEAVY, "rosbags", "cv2"],
    "mm_ros.interfaces": ["rclpy", "zenoh", "torch", "tensorrt", "onnxruntime", "transformers"],
    "mm_ros.cli.main": HEAVY,
    "mm_ros.bus": ["rclpy", "zenoh", "torch", "tensorrt", "onnxruntime", "transformers"],
    "mm_ros.bus.zenoh_bus": ["rclpy", "torch", "tensorrt", "onnxruntime", "transformers"],
    # the synthetic world: core + numpy + OpenCV; its publisher node lives in mm_ros.nodes
    "mm_ros.sim.episode": [*HEAVY, "mm_ros.bus", "mm_ros.nodes"],
    # capture sources: sounddevice only once a device is opened, never a bus
    "mm_ros.drivers.sounddevice_source": [*HEAVY, "mm_ros.bus", "sounddevice", "cv2"],
    "mm_ros.drivers.wav_source": [*HEAVY, "mm_ros.bus", "sounddevice", "cv2"],
    "mm_ros.drivers.camera_source": [*HEAVY, "mm_ros.bus", "cv2"],  # OpenCV once a source opens
    # the headset's streaming API: pip-only, no ROS 2 and no model runtimes
    "mm_ros.stream": ["rclpy", "torch", "tensorrt", "onnxruntime", "transformers"],
    # adapters are torch modules; runtimes and buses are not theirs to import
    "mm_ros.adapters": [*NO_RUNTIMES, "torch"],
    "mm_ros.adapters.build": NO_RUNTIMES,
    # the headset path (spec + ONNX Runtime + numpy preprocessing) needs no torch
    "mm_ros.adapters.checkpoint": [*NO_RUNTIMES, "torch"],
    "mm_ros.engines.session": [*NO_RUNTIMES, "torch"],
    "mm_ros.engines.runtimes.onnxruntime": [*NO_BUS, "tensorrt", "torch"],
    # engines load onnxruntime / tensorrt lazily, when a runtime is created
    "mm_ros.engines": [*NO_RUNTIMES, "torch"],
    "mm_ros.engines.selection": NO_RUNTIMES,
    "mm_ros.engines.runtimes.tensorrt": NO_RUNTIMES,
    "mm_ros.engines.builder": NO_RUNTIMES,
    "mm_ros.cli.engines_cmd": HEAVY,
    # the token-space service: torch and transformers, never a bus
    "mm_ros.llm": [*NO_RUNTIMES, "torch", "transformers"],
    "mm_ros.llm.service": NO_BUS,
    "mm_ros.llm.backends.composed": NO_BUS,
    "mm_ros.llm.annotate": [*NO_BUS, "torch", "transformers"],
    # node modules load the model in configure, so --help and launch checks stay light
    "mm_ros.nodes.model_service_node": ["torch", "transformers", "tensorrt", "onnxruntime"],
    "mm_ros.nodes.adapter_node": ["torch", "transformers", "tensorrt", "onnxruntime"],
}
CORE = Path(__file__).resolve().parents[1] / "mm_ros" / "core"
ALL_CORE_MODULES = sorted(
    f"mm_ros.core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__"
)


def imported_after(module: str) -> set[str]:
    code = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(("module", "forbidden"), sorted(FORBIDDEN.items()))
def test_layer_imports(module: str, forbidden: list[str]) -> None:
    loaded = imported_after(module)
    pulled = sorted(m for m in loaded for f in forbidden if m == f or m.startswith(f + "."))
    assert not pulled, f"{module} imported {pulled}"


def test_core_modules_import_only_stdlib_and_numpy() -> None:
    for module in ALL_CORE_MODULES:
        loaded = imported_after(module)
        third_party = {m.split(".")[0] for m in loaded if not m.startswith("_")}
        assert third_party - set(sys.stdlib_module_names) <= {"mm_ros", "numpy"}, module


def test_no_own_msg_srv_action_subpackage() -> None:
    # those names belong to rosidl's generated code in a colcon install (DESIGN.md section 4)
    import mm_ros

    for name in ("msg", "srv", "action"):
        assert not (Path(mm_ros.__file__).parent / name).exists()
