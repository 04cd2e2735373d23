"""``sim_world`` over the bus: rates, values, parameters, the executable."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from mm_ros.bus import LATCHED, RELIABLE
from mm_ros.bus.naming import SENSOR_STREAM
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.audio import decode_audio_ros_drivers
from mm_ros.core.images import decode_image
from mm_ros.nodes.sim_world_node import SimWorldConfig, SimWorldNode
from tests.nodes.helpers import ros_args


def listen(node, topics: dict[str, tuple[str, object]]) -> dict[str, list]:
    got: dict[str, list] = {name: [] for name in topics}
    for name, (typename, qos) in topics.items():
        node.create_subscription(name, typename, got[name].append, qos)
    return got


def spacing_ms(messages: list) -> float:
    """Median spacing of consecutive header stamps, in milliseconds."""
    stamps = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in messages])
    return float(np.median(np.diff(stamps))) / 1e6


def test_publishes_every_stream_at_its_rate(make_zenoh) -> None:
    sim_bus = make_zenoh("sim_world", ["--ros-args", "-p", "seed:=7"])
    observer = make_zenoh("observer")
    # deep backlogs: a busy callback thread must not drop what the assertions count
    got = listen(
        observer,
        {
            "/camera/image_raw": ("sensor_msgs/msg/Image", SENSOR_STREAM),
            "/camera/camera_info": ("sensor_msgs/msg/CameraInfo", SENSOR_STREAM),
            "/imu/data": ("sensor_msgs/msg/Imu", SENSOR_STREAM),
            "/audio/audio_stamped": ("audio_common_msgs/msg/AudioDataStamped", SENSOR_STREAM),
            "/audio/audio_info": ("audio_common_msgs/msg/AudioInfo", LATCHED),
            "/sim_world/ground_truth": ("std_msgs/msg/String", RELIABLE),
        },
    )
    wait_until(lambda: observer.count_subscribers("/imu/data") > 0, 10, "subscriptions")
    node = SimWorldNode(sim_bus)
    assert node.config.seed == 7
    wait_until(lambda: len(got["/camera/image_raw"]) >= 2, 10, "first frames")
    counts_before = {k: len(v) for k, v in got.items()}
    time.sleep(2.0)  # a measurement window, not a synchronisation wait
    # Rates in the streams' own time: on a loaded machine the world falls behind the wall clock
    # and catches up in bursts (a frame rendered late keeps its stamp), so counts per wall
    # second say how busy the machine is, not what the node publishes (bench/ has throughput).
    # The median spacing tolerates a message lost on best effort.
    assert spacing_ms(got["/camera/image_raw"]) == pytest.approx(1000 / 30, rel=0.05)
    assert spacing_ms(got["/imu/data"]) == pytest.approx(5.0, rel=0.05)
    assert spacing_ms(got["/audio/audio_stamped"]) == pytest.approx(20.0, rel=0.05)  # chunks
    for topic in ("/camera/image_raw", "/imu/data", "/audio/audio_stamped"):
        assert len(got[topic]) >= 10, topic  # it kept publishing through the window
    assert got["/audio/audio_info"][0].sample_rate == 16000
    # repeated every second of audio (in the world's time: a loaded machine takes longer)
    wait_until(lambda: len(got["/audio/audio_info"]) >= 2, 10, "audio_info repeated")
    node.close()

    image = got["/camera/image_raw"][-1]
    frame = decode_image(
        image.encoding, image.width, image.height, image.step, image.is_bigendian, image.data
    )
    assert frame.pixels.shape == (480, 640, 3)
    assert frame.pixels.std() > 5  # shaded shapes, not a blank frame
    info = got["/camera/camera_info"][-1]
    assert (info.width, info.height) == (640, 480)

    # one CameraInfo per frame with the frame's stamp; the two streams arrive independently, so
    # the newest of each may differ when the node closes (and best effort may lose one or two)
    def stamps(topic: str) -> set[tuple[int, int]]:
        return {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got[topic]}

    images, infos = stamps("/camera/image_raw"), stamps("/camera/camera_info")
    assert len(images & infos) >= 0.9 * max(len(images), len(infos))
    truth = json.loads(got["/sim_world/ground_truth"][-1].data)
    assert {"objects", "motion"} <= set(truth)
    accel = np.array(
        [
            [m.linear_acceleration.x, m.linear_acceleration.y, m.linear_acceleration.z]
            for m in got["/imu/data"]
        ]
    )
    assert 9.3 < np.linalg.norm(accel.mean(axis=0)) < 10.3  # gravity once motion averages out
    audio = got["/audio/audio_stamped"][-1]
    chunk = decode_audio_ros_drivers(audio.audio.data, 1, 16000, "S16LE")
    assert chunk.frames == 320
    stamps = [
        m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        for m in got["/imu/data"][counts_before["/imu/data"] :]
    ]
    assert stamps == sorted(stamps)
    assert Counter(np.diff(stamps)).most_common(1)[0][0] == 5_000_000  # 200 Hz stamps


def test_every_parameter_reaches_the_config(make_zenoh) -> None:
    overrides = {
        "seed": 11,
        "episode_s": 5.0,
        "loop": False,
        "tick_s": 0.01,
        "image_topic": "cam/img",
        "camera_info_topic": "cam/info",
        "imu_topic": "imu/raw",
        "audio_layout": "mgonzs13",
        "audio_topic": "mic",
        "audio_info_topic": "mic_info",
        "ground_truth_topic": "truth",
    }
    assert set(overrides) == {f.name for f in dataclasses.fields(SimWorldConfig)}
    node = SimWorldNode(make_zenoh("sim_world", ros_args(overrides)))
    try:
        assert dataclasses.asdict(node.config) == overrides
    finally:
        node.close()


def test_bad_parameter_values_are_config_errors(make_zenoh) -> None:
    from mm_ros.core.errors import ConfigError

    with pytest.raises(ConfigError, match="audio_layout must be one of"):
        SimWorldNode(make_zenoh("sim_world", ["--ros-args", "-p", "audio_layout:=wav"]))


def test_executable_runs_and_stops_on_sigint(router: str, make_zenoh) -> None:
    env = dict(os.environ, MM_ROS_CONNECT=router)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mm_ros.cli.main",
            "run",
            "sim_world",
            "--ros-args",
            "-p",
            "seed:=3",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        observer = make_zenoh("observer")
        got: list = []
        observer.create_subscription(
            "/sim_world/ground_truth", "std_msgs/msg/String", got.append, RELIABLE
        )
        wait_until(lambda: len(got) >= 3, 30, "ground truth from the sim_world process")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_bad_ros_args_exit_2_naming_the_token(router: str) -> None:
    env = dict(os.environ, MM_ROS_CONNECT=router)
    proc = subprocess.run(
        [sys.executable, "-m", "mm_ros.cli.main", "run", "sim_world", "--ros-args", "-p", "seed=7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "'seed=7'" in proc.stderr
