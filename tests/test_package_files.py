"""ROS 2 package files agree with the Python package (no ROS needed)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from mm_ros.cli.executables import EXECUTABLES

REPO = Path(__file__).resolve().parents[1]
CMAKE = (REPO / "CMakeLists.txt").read_text()


def test_package_xml_declares_what_the_issue_lists() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "mm_ros"
    assert root.findtext("export/build_type") == "ament_cmake"
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    assert {
        "rclpy",
        "std_msgs",
        "builtin_interfaces",
        "sensor_msgs",
        "vision_msgs",
        "diagnostic_msgs",
        "action_msgs",
        "unique_identifier_msgs",
        "lifecycle_msgs",
        "audio_common_msgs",
        "rosidl_default_generators",
        "rosidl_default_runtime",
    } <= deps
    assert root.findtext("version") == __import__("mm_ros").__version__


def test_cmake_generates_every_interface_file() -> None:
    listed = set(re.findall(r'"((?:msg|action|srv)/\w+\.\w+)"', CMAKE))
    present = {
        str(p.relative_to(REPO))
        for d in ("msg", "action", "srv")
        for p in (REPO / d).glob("*")
        if p.suffix in (".msg", ".action", ".srv")
    }
    assert listed == present


def test_cmake_installs_python_after_generation_and_every_executable() -> None:
    assert CMAKE.index("rosidl_generate_interfaces(") < CMAKE.index("install(DIRECTORY mm_ros")
    assert "ament_python_install_package" not in CMAKE
    block = re.search(r"set\(MM_ROS_EXECUTABLES(.*?)\)", CMAKE, re.S)
    assert block is not None
    assert sorted(block.group(1).split()) == sorted(EXECUTABLES)


def test_wheel_ships_our_definitions(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mm_ros/interfaces/definitions/mm_ros/action/Ask.action" in names
    assert "mm_ros/interfaces/definitions/vision_msgs/msg/Detection2D.msg" in names
    assert "mm_ros/py.typed" in names
    assert "mm_ros/share/launch/demo.launch.yaml" in names
    assert "mm_ros/share/launch/parts/model.launch.yaml" in names
