"""Headset → router → robot: the streaming API, clock alignment and the bandwidth budget."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mm_ros.bus import RELIABLE, SENSOR_DATA
from mm_ros.bus.naming import SENSOR_STREAM
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.bandwidth import BandwidthConfig
from mm_ros.core.errors import ConfigError
from mm_ros.core.sensors import CameraModel
from mm_ros.stream import HeadsetStreamer, TimeServer
from mm_ros.stream.streamer import (
    AUDIO_OVERHEAD_BYTES,
    CAMERA_INFO_BYTES,
    IMAGE_OVERHEAD_BYTES,
    IMU_MESSAGE_BYTES,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "headset_stream.py"
TOPICS = {
    "image": ("/headset/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage"),
    "audio": ("/headset/audio/audio_stamped", "audio_common_msgs/msg/AudioDataStamped"),
    "imu": ("/headset/imu/data", "sensor_msgs/msg/Imu"),
}


def stamp(m) -> int:
    return m.header.stamp.sec * 10**9 + m.header.stamp.nanosec


def subscribe_all(robot) -> dict[str, list]:
    got: dict[str, list] = {k: [] for k in TOPICS}
    for kind, (topic, typename) in TOPICS.items():
        robot.create_subscription(topic, typename, got[kind].append, SENSOR_STREAM)
    return got


def test_headset_process_streams_three_modalities_to_the_robot(make_zenoh, router: str) -> None:
    robot = make_zenoh("robot")
    TimeServer(robot)
    got = subscribe_all(robot)
    info: list = []
    robot.create_subscription(
        "/headset/audio/audio_info", "audio_common_msgs/msg/AudioInfo", info.append, RELIABLE
    )
    seconds = 3.0
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--connect", router, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: len(got["imu"]) >= 0.6 * 200 * seconds, 5, "IMU messages")
    # 200 Hz IMU, 50 Hz audio, 25 fps camera for 3 s; a loaded 2-core machine may lag a little
    assert len(got["audio"]) >= 0.6 * 50 * seconds
    assert len(got["image"]) >= 0.6 * 25 * seconds
    for kind, messages in got.items():
        stamps = [stamp(m) for m in messages]
        d = np.diff(stamps)
        assert (d > 0).all(), (kind, d[d <= 0], np.nonzero(d <= 0), len(d))
    assert got["image"][0].format == "jpeg"
    assert info[0].sample_rate == 16000
    assert info[0].channels == 1


def test_clock_offset_and_drift_are_estimated_and_stamps_corrected(make_zenoh, router: str) -> None:
    robot = make_zenoh("robot")
    TimeServer(robot)
    imu: list = []
    robot.create_subscription(*TOPICS["imu"], imu.append, SENSOR_DATA)
    t0 = time.time_ns()

    def headset_clock_at(real_ns: int) -> int:  # 2.5 s ahead, running 200 ppm fast
        return real_ns + 2_500_000_000 + round((real_ns - t0) * 200e-6)

    headset = HeadsetStreamer(
        router,
        clock_ns=lambda: headset_clock_at(time.time_ns()),
        time_sync_period_s=0.05,
        node_name="skewed_headset",
    )
    try:
        assert headset.clock is not None
        wait_until(lambda: len(headset.clock.filter) >= 60, 10, "60 clock exchanges")  # 3 s
        estimate = headset.clock_estimate()
        assert estimate is not None
        real = time.time_ns()
        assert abs(estimate.to_remote(headset_clock_at(real)) - real) < 5_000_000
        assert estimate.uncertainty_ns < 5_000_000
        wait_until(lambda: robot.count_subscribers("/time_sync/request") > 0, 5, "the server")
        real = time.time_ns()
        headset.send_imu((0.0, 0.0, 9.81), (0.0, 0.0, 0.0), stamp_ns=headset_clock_at(real))
        wait_until(lambda: len(imu) == 1, 5, "the IMU message")
        assert abs(stamp(imu[0]) - real) < 5_000_000  # robot clock, not the headset's
        status = headset.status()
        assert abs(int(status["clock_offset_ns"]) + 2_500_000_000) < 5_000_000
        assert "clock_uncertainty_ns" in status
    finally:
        headset.close()


def test_budget_holds_on_the_wire_and_audio_and_imu_all_arrive(make_zenoh, router: str) -> None:
    # 3 s over the bus (the full 10 s runs on simulated time in tests/test_bandwidth.py)
    robot = make_zenoh("robot")
    got = subscribe_all(robot)
    budget_mbps, seconds = 2.0, 3.0
    infos: list = []
    robot.create_subscription(
        "/headset/camera/camera_info", "sensor_msgs/msg/CameraInfo", infos.append, SENSOR_STREAM
    )
    camera = CameraModel(320, 240, (300.0, 0.0, 160.0, 0.0, 300.0, 120.0, 0.0, 0.0, 1.0), "", ())
    headset = HeadsetStreamer(
        router, budget_mbps=budget_mbps, time_sync=False, node_name="lim", camera=camera
    )
    rng = np.random.default_rng(0)
    frames = [
        np.kron(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
        for _ in range(4)
    ]  # 320x240, hard to compress
    try:
        wait_until(lambda: headset.bus.count_subscribers(TOPICS["imu"][0]) > 0, 10, "robot")
        start = time.monotonic()
        for tick in range(int(seconds * 200)):
            headset.send_imu((0.0, 0.0, 9.81), (0.0, 0.0, 0.0))
            if tick % 4 == 0:
                headset.send_audio(np.zeros(320, np.int16), 16000)
            if tick % 7 == 0:
                headset.send_frame(frames[tick % 4])
            time.sleep(max(0.0, start + (tick + 1) / 200 - time.monotonic()))
        elapsed = time.monotonic() - start
        wait_until(lambda: len(got["imu"]) == int(seconds * 200), 5, "every IMU message")
    finally:
        headset.close()
    wire = (
        sum(len(m.data) + IMAGE_OVERHEAD_BYTES for m in got["image"])
        + sum(len(m.audio.data) + AUDIO_OVERHEAD_BYTES for m in got["audio"])
        + IMU_MESSAGE_BYTES * len(got["imu"])
        + CAMERA_INFO_BYTES * len(infos)
    )
    # a token bucket: the budget over the run, plus one bucket depth that may have filled while
    # the test waited for the subscriber (the streamer existed, the clock ran)
    depth = BandwidthConfig().burst_s * budget_mbps * 1e6 / 8
    assert wire <= budget_mbps * 1e6 / 8 * elapsed + depth
    assert 8 * wire / elapsed <= 1.2 * budget_mbps * 1e6  # and not far over it in any case
    assert len(got["audio"]) == int(seconds * 50)
    assert len(got["image"]) >= 10
    assert [stamp(m) for m in infos] == [stamp(m) for m in got["image"]]  # one per frame
    assert infos[0].k[0] == 300.0
    assert headset.status()["frames_dropped"] != "0" or len(got["image"]) < seconds * 200 / 7


def test_unknown_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="budget_mbit"):
        HeadsetStreamer("tcp/127.0.0.1:1", budget_mbit=3)
