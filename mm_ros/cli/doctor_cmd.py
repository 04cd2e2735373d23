"""``mm-ros doctor``: what this machine can run, and the fix for everything it cannot.

Sections: Python, packages, GPU and runtimes, engine cache, ROS 2, bus, audio. Each line is
``ok``, ``warn`` or ``info`` with the fix when something is wrong. Exit 0 unless ``--strict``
and something is not ok.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RUNTIME = 0, 1
TOPICS_SHOWN = 12  # the bus section names this many published topics


@dataclass(frozen=True)
class Check:
    """One finding."""

    section: str
    name: str
    status: str  # ok | warn | info
    detail: str
    fix: str = ""


def register(subparsers: Any) -> None:
    """Add ``doctor``."""
    doctor = subparsers.add_parser("doctor", help="check this machine: runtimes, GPU, ROS 2, bus")
    doctor.add_argument(
        "--connect",
        action="append",
        metavar="ENDPOINT",
        help="router to check (default $MM_ROS_CONNECT or tcp/127.0.0.1:7447)",
    )
    doctor.add_argument("--domain", type=int, help="ROS domain id (default $ROS_DOMAIN_ID or 0)")
    doctor.add_argument(
        "--cache",
        type=Path,
        default=Path("engines/cache"),
        help="engine cache folder (default engines/cache)",
    )
    doctor.add_argument("--strict", action="store_true", help="exit 1 when anything is not ok")
    doctor.set_defaults(handler=_doctor)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def python_checks() -> list[Check]:
    """Check the interpreter and environment."""
    venv = sys.prefix != sys.base_prefix
    ok = sys.version_info >= (3, 10)
    return [
        Check(
            "python",
            "interpreter",
            "ok" if ok else "warn",
            f"Python {platform.python_version()} on {platform.machine()} {platform.system()}",
            "" if ok else "use Python 3.10 or newer",
        ),
        Check(
            "python",
            "environment",
            "ok" if venv else "info",
            f"{'virtual environment' if venv else 'system interpreter'} at {sys.prefix}",
            "" if venv else "`make venv` creates .venv with everything pinned",
        ),
    ]


PACKAGES = [  # (distribution, what needs it, fix)
    ("numpy", "everything", "pip install numpy"),
    ("rosbags", "wire types, CDR, bags", "pip install 'rosbags>=0.11.9,<0.12'"),
    ("eclipse-zenoh", "the pip bus", "pip install 'eclipse-zenoh>=1.6.2,<2'"),
    (
        "opencv-python-headless",
        "image codecs, the synthetic world",
        "pip install opencv-python-headless",
    ),
    ("torch", "adapters in torch, training", "pip install '.[models]' (CPU: torch==2.13.0)"),
    ("transformers", "HF encoders and language models", "pip install '.[models]'"),
    ("onnxruntime", "exported adapters (CPU)", "pip install '.[cpu]' (or '.[gpu]', never both)"),
    ("onnxruntime-gpu", "exported adapters on CUDA/TensorRT", "pip install '.[gpu]'"),
    (
        "sounddevice",
        "the microphone node",
        "pip install '.[audio]' and apt-get install libportaudio2",
    ),
]


def package_checks() -> list[Check]:
    """Versions of what mm_ros uses; missing optional ones are info, not failures."""
    out = []
    required = {"numpy", "rosbags", "eclipse-zenoh", "opencv-python-headless"}
    has_ort = _version("onnxruntime") or _version("onnxruntime-gpu")
    for dist, use, fix in PACKAGES:
        version = _version(dist)
        if version:
            out.append(Check("packages", dist, "ok", f"{version} ({use})"))
        elif dist.startswith("onnxruntime") and has_ort:
            continue
        else:
            status = "warn" if dist in required else "info"
            out.append(Check("packages", dist, status, f"not installed ({use})", fix))
    if _version("onnxruntime") and _version("onnxruntime-gpu"):
        out.append(
            Check(
                "packages",
                "onnxruntime",
                "warn",
                "both onnxruntime and onnxruntime-gpu "
                "are installed: they overwrite each other's module",
                "pip uninstall onnxruntime onnxruntime-gpu, then install one",
            )
        )
    return out


def gpu_checks(cache: Path) -> list[Check]:
    """CUDA, TensorRT, ONNX Runtime providers and the engine cache."""
    out = []
    try:
        import torch

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            major, minor = torch.cuda.get_device_capability(0)
            free, total = torch.cuda.mem_get_info(0)
            out.append(
                Check(
                    "gpu",
                    "cuda",
                    "ok",
                    f"{name}, compute capability {major}.{minor}, "
                    f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free",
                )
            )
        else:
            out.append(
                Check(
                    "gpu",
                    "cuda",
                    "info",
                    f"no CUDA GPU visible to torch {torch.__version__}",
                    "on a GPU machine install a CUDA build of torch",
                )
            )
    except ImportError:
        out.append(Check("gpu", "cuda", "info", "torch not installed: no CUDA check"))
    from mm_ros.cli.engines_cmd import entry_status, machine_identity

    identity, why_not = machine_identity()
    if identity is not None:
        out.append(
            Check(
                "gpu",
                "tensorrt",
                "ok",
                f"TensorRT {identity.tensorrt_version} on "
                f"{identity.gpu_name} ({identity.compute_capability})",
            )
        )
    else:
        out.append(
            Check(
                "gpu",
                "tensorrt",
                "info",
                f"no TensorRT engine can run here: {why_not}",
                "Jetson: JetPack's tensorrt (venv with --system-site-packages); "
                "desktop: pip install tensorrt",
            )
        )
    try:
        ort = importlib.import_module("onnxruntime")
        providers = ", ".join(ort.get_available_providers())
        out.append(Check("gpu", "onnxruntime", "ok", f"providers: {providers}"))
    except ImportError:
        pass
    from mm_ros.engines.cache import EngineCache

    entries = EngineCache(cache).entries() if cache.is_dir() else []
    valid = [e for e in entries if entry_status(e, identity, why_not) == "valid here"]
    status = "ok" if len(valid) == len(entries) else "warn"
    out.append(
        Check(
            "engines",
            "cache",
            status,
            f"{cache}: {len(entries)} engine(s), {len(valid)} valid for this machine",
            ""
            if status == "ok"
            else "rebuild: mm-ros engines build --manifest "
            "engines/manifest.yaml (see `mm-ros engines verify`)",
        )
    )
    return out


def ros_checks() -> list[Check]:
    """Check for a sourced ROS 2, our built interfaces, and which bus nodes will use."""
    from mm_ros.bus.select import choose_backend

    out = []
    distro = os.environ.get("ROS_DISTRO")
    sourced = bool(os.environ.get("AMENT_PREFIX_PATH"))
    out.append(
        Check(
            "ros2",
            "environment",
            "ok" if sourced else "info",
            f"sourced ROS 2 {distro or '?'} ({os.environ.get('RMW_IMPLEMENTATION') or 'default'})"
            if sourced
            else "no sourced ROS 2 (fine on a headset: the zenoh bus needs none)",
            "" if sourced else "on a robot: . /opt/ros/jazzy/setup.bash && . install/setup.bash",
        )
    )
    backend, reason = choose_backend()
    out.append(Check("ros2", "bus", "ok", f"nodes will use the {backend} bus: {reason}"))
    if sourced and backend == "zenoh":
        out.append(
            Check(
                "ros2",
                "interfaces",
                "warn",
                reason,
                "colcon build --packages-select mm_ros && . install/setup.bash",
            )
        )
    return out


def bus_checks(args: argparse.Namespace) -> list[Check]:
    """Reach the router; count nodes and topics seen."""
    from mm_ros.bus.naming import EntityKind
    from mm_ros.bus.protocol import BusConfig, BusUnavailableError
    from mm_ros.bus.zenoh_bus import ZenohBus

    config = BusConfig.from_env(
        connect=tuple(args.connect) if args.connect else None,
        domain=args.domain,
        connect_timeout_s=2.0,
    )
    where = ", ".join(config.connect)
    try:
        with ZenohBus(f"mm_ros_doctor_{os.getpid()}", config=config) as bus:
            graph = bus.graph()
    except BusUnavailableError:
        return [
            Check(
                "bus",
                "router",
                "warn",
                f"no Zenoh router at {where}",
                "start one: `mm-ros router` (or rmw_zenohd on a ROS 2 machine), "
                "or point --connect / MM_ROS_CONNECT at the robot",
            )
        ]
    nodes = {f"{e.namespace.rstrip('/')}/{e.node}" for e in graph if e.kind is EntityKind.NODE}
    topics = sorted({e.name for e in graph if e.kind is EntityKind.PUBLISHER})
    shown = ", ".join(topics[:TOPICS_SHOWN]) + (" ..." if len(topics) > TOPICS_SHOWN else "")
    return [
        Check("bus", "router", "ok", f"router at {where}, domain {config.domain}"),
        Check(
            "bus",
            "graph",
            "ok" if len(nodes) > 1 else "info",
            f"{len(nodes)} node(s), {len(topics)} published topic(s): {shown or 'none'}",
            "" if len(nodes) > 1 else "only this check's node: start sensors or sim_world",
        ),
    ]


def audio_checks() -> list[Check]:
    """PortAudio and the capture devices the microphone node could open."""
    from mm_ros.core.errors import AudioDeviceError
    from mm_ros.drivers.sounddevice_source import list_devices, load_sounddevice

    try:
        devices = [d for d in list_devices(load_sounddevice()) if d.max_input_channels > 0]
    except AudioDeviceError as err:
        return [
            Check(
                "audio",
                "portaudio",
                "info",
                str(err),
                "apt-get install libportaudio2; pip install '.[audio]'; or source:=wav",
            )
        ]
    if not devices:
        return [
            Check(
                "audio",
                "devices",
                "info",
                "PortAudio works but sees no input device",
                "plug in a microphone, or use the microphone node's source:=wav",
            )
        ]
    return [Check("audio", "devices", "ok", "; ".join(str(d) for d in devices))]


def run_checks(args: argparse.Namespace) -> list[Check]:
    """Every section, in order."""
    return [
        *python_checks(),
        *package_checks(),
        *gpu_checks(args.cache),
        *ros_checks(),
        *bus_checks(args),
        *audio_checks(),
    ]


def _doctor(args: argparse.Namespace) -> int:
    checks = run_checks(args)
    section = ""
    marks = {"ok": "ok  ", "warn": "WARN", "info": "info"}
    for check in checks:
        if check.section != section:
            section = check.section
            print(f"\n[{section}]")
        print(f"  {marks[check.status]} {check.name}: {check.detail}")
        if check.fix:
            print(f"       fix: {check.fix}")
    bad = [c for c in checks if c.status == "warn"]
    print(f"\n{len(checks)} checks, {len(bad)} warning(s)")
    return EXIT_RUNTIME if args.strict and bad else EXIT_OK
