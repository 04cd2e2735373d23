"""``sensor_monitor`` fed malformed messages over the bus: logged, counted, still serving."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_ros.bus import LATCHED, RELIABLE, SENSOR_DATA
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.errors import ConfigError
from mm_ros.nodes.sensor_monitor_node import SensorMonitorNode


def header(i: int) -> dict:
    return {"stamp": {"sec": 100, "nanosec": i * 1_000_000}, "frame_id": "cam"}


def test_malformed_inputs_are_counted_and_good_ones_still_arrive(make_zenoh, caplog) -> None:
    monitor_bus = make_zenoh("sensor_monitor", ["--ros-args", "-p", "period_s:=0.2"])
    node = SensorMonitorNode(monitor_bus)
    robot = make_zenoh("robot")
    diagnostics: list = []
    robot.create_subscription(
        "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", diagnostics.append, RELIABLE
    )
    image = robot.create_publisher("camera/image_raw", "sensor_msgs/msg/Image", SENSOR_DATA)
    imu = robot.create_publisher("imu/data", "sensor_msgs/msg/Imu", SENSOR_DATA)
    audio = robot.create_publisher(
        "audio/audio_stamped", "audio_common_msgs/msg/AudioDataStamped", SENSOR_DATA
    )
    info = robot.create_publisher("audio/audio_info", "audio_common_msgs/msg/AudioInfo", LATCHED)
    wait_until(lambda: robot.count_subscribers("/imu/data") > 0, 10, "the monitor")
    good = np.zeros(4 * 6 * 3, dtype=np.uint8)
    bad_images = [
        {"height": 4, "width": 6, "encoding": "rgb8", "step": 6, "data": good},  # step
        {"height": 4, "width": 6, "encoding": "rgb8", "step": 18, "data": good[:10]},  # short
        {"height": 4, "width": 6, "encoding": "bayer_rggb8", "step": 6, "data": good[:24]},
        {"height": 0, "width": 6, "encoding": "rgb8", "step": 18, "data": good[:0]},
    ]
    intakes = node.inputs.intakes

    def send_until(publisher, message, intake, what: str, count: int) -> None:
        wait_until(
            lambda: (
                publisher.publish(message),
                intake.stats().accepted + intake.stats().rejected >= count,
            )[1],
            10,
            what,
        )

    for i, bad in enumerate(bad_images, start=1):
        send_until(image, {"header": header(i), **bad}, intakes["image"], f"bad image {i}", i)
    nan_imu = {
        "header": header(1),
        "linear_acceleration": {"x": math.nan, "z": 9.8},
        "orientation_covariance": [-1.0] + [0.0] * 8,
    }
    send_until(imu, nan_imu, intakes["imu"], "NaN imu", 1)
    # audio before its info is held (not counted yet), then judged by the info that comes
    wait_until(
        lambda: (
            audio.publish({"header": header(1), "audio": {"data": bytes(640)}}),
            len(node.inputs._pending_audio) >= 1,
        )[1],
        10,
        "audio before its info, held",
    )
    assert intakes["audio"].stats().accepted + intakes["audio"].stats().rejected == 0
    # an AudioInfo with zero channels is dropped (counted on its topic): the chunks stay held
    bad_info = {
        "channels": 0,
        "sample_rate": 16000,
        "sample_format": "S16LE",
        "coding_format": "wave",
    }
    info_drops = ("/audio/audio_info", "InvalidValueError")
    wait_until(
        lambda: (info.publish(bad_info), node.bus.drops.counts().get(info_drops, 0))[1] >= 1,
        10,
        "the bad audio info dropped",
    )
    assert node.inputs._audio_info is None
    assert intakes["audio"].stats().rejected == 0  # held, not lost
    # the node keeps serving: good messages are stored after all the bad ones
    good_image = {
        "header": header(9),
        "height": 4,
        "width": 6,
        "encoding": "rgb8",
        "step": 18,
        "data": good,
    }
    wait_until(
        lambda: (image.publish(good_image), intakes["image"].stats().accepted)[1] >= 1,
        10,
        "a good image",
    )
    info.publish(
        {"channels": 1, "sample_rate": 16000, "sample_format": "S16LE", "coding_format": "wave"}
    )
    wait_until(lambda: node.inputs._audio_info is not None, 10, "the valid audio info")
    good_audio = {"header": header(3), "audio": {"data": bytes(640)}}
    wait_until(
        lambda: (audio.publish(good_audio), intakes["audio"].stats().accepted)[1] >= 2,
        10,
        "the held chunk and good audio",
    )
    odd = {"header": header(4), "audio": {"data": bytes(641)}}  # not whole S16LE samples
    wait_until(  # good chunks sent above may still arrive: wait for the rejection itself
        lambda: (audio.publish(odd), intakes["audio"].stats().rejected)[1] >= 1,
        10,
        "audio of an odd byte count rejected",
    )

    image_stats, imu_stats, audio_stats = (intakes[k].stats() for k in ("image", "imu", "audio"))
    assert image_stats.accepted >= 1
    assert image_stats.rejected_by_error.keys() >= {"SizeMismatchError", "UnsupportedEncodingError"}
    assert sum(image_stats.rejected_by_error.values()) >= 4
    assert "step" in caplog.text  # the log line names the field
    assert imu_stats.rejected_by_error == {"InvalidValueError": imu_stats.rejected}
    assert "nan" in imu_stats.last_error.lower()
    assert audio_stats.rejected >= 1
    assert audio_stats.accepted >= 2
    assert node.inputs.windows.image.newest_ns() == 100 * 10**9 + 9_000_000

    def reported() -> bool:
        if not diagnostics:
            return False
        status = {s.hardware_id: {v.key: v.value for v in s.values} for s in diagnostics[-1].status}
        return (
            status.get("camera/image_raw", {}).get("rejected.SizeMismatchError") is not None
            and int(status["imu/data"]["rejected"]) >= 1
        )

    wait_until(reported, 10, "rejections on /diagnostics")
    node.close()


def test_bad_parameters_are_config_errors(make_zenoh) -> None:
    from mm_ros.core.errors import ConfigError

    with pytest.raises(ConfigError, match="image_transport must be one of raw, compressed"):
        SensorMonitorNode(make_zenoh("m", ["--ros-args", "-p", "image_transport:=theora"]))


def test_report_period_and_staleness_can_be_set_while_running(make_zenoh) -> None:
    bus = make_zenoh("sensor_monitor", ["--ros-args", "-p", "period_s:=30.0"])
    node = SensorMonitorNode(bus)
    listener = make_zenoh("listener")
    reports: list = []
    listener.create_subscription(
        "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", reports.append, RELIABLE
    )
    wait_until(lambda: bus.count_subscribers("/diagnostics") > 0, 10, "the listener")
    bus.set_parameter("period_s", 0.1)  # from one report per 30 s to ten a second
    wait_until(lambda: len(reports) >= 3, 10, "reports at the new period")
    bus.set_parameter("stale_after_s", 5.0)
    assert node.config.stale_after_s == 5.0
    with pytest.raises(ConfigError, match="period_s and stale_after_s must be > 0"):
        bus.set_parameter("period_s", -1.0)
    assert node.config.period_s == 0.1
    with pytest.raises(ConfigError, match="read-only"):
        bus.set_parameter("imu_topic", "/other/imu")
    node.close()
