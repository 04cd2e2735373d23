"""``camera`` over the bus with a video file OpenCV writes (MJPG in AVI: a real codec path)."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import itertools
import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from mm_ros.bus import SENSOR_DATA
from mm_ros.bus.naming import SENSOR_STREAM
from mm_ros.bus.protocol import as_array
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.errors import CameraDeviceError, ConfigError
from mm_ros.nodes.camera_node import CameraConfig, CameraNode
from tests.nodes.helpers import ros_args, run_executable
from tests.test_camera_yaml import CALIBRATION

W, H, N = 64, 48, 12


def write_video(path: Path) -> list[np.ndarray]:
    """Write N frames whose brightness encodes their index; return them as OpenCV reads them."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30, (W, H))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for i in range(N):
        frame = np.full((H, W, 3), 10 + 20 * i, np.uint8)
        frame[:, : W // 2, 2] = 255 - 20 * i  # some colour, so RGB/BGR order is checked
        writer.write(frame)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    read = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        read.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(read) == N
    return read


def pixels(m) -> np.ndarray:
    return as_array(m.data).reshape(m.height, m.width, 3)


def stamp(m) -> int:
    return m.header.stamp.sec * 10**9 + m.header.stamp.nanosec


def test_video_file_frames_arrive_in_order_with_stamps_jpeg_and_camera_info(
    make_zenoh, tmp_path: Path
) -> None:
    video, calib = tmp_path / "clip.avi", tmp_path / "calib.yaml"
    source = write_video(video)
    calib.write_text(CALIBRATION)
    observer = make_zenoh("observer")
    raw, jpeg, info = [], [], []
    for topic, typename, sink in (
        ("/camera/image_raw", "Image", raw),
        ("/camera/image_raw/compressed", "CompressedImage", jpeg),
        ("/camera/camera_info", "CameraInfo", info),
    ):
        observer.create_subscription(
            topic, f"sensor_msgs/msg/{typename}", sink.append, SENSOR_STREAM
        )
    args = [
        "--ros-args",
        "-p",
        f"source:={video}",
        "-p",
        "fps:=20.0",
        "-p",
        "transport:=both",
        "-p",
        f"camera_info_url:={calib}",
        "-p",
        "jpeg_quality:=95",
    ]
    bus = make_zenoh("camera", args)
    wait_until(lambda: observer.count_subscribers("/camera/camera_info") > 0, 10, "observer")
    node = CameraNode(bus)
    try:
        wait_until(lambda: len(raw) == N and len(jpeg) == N and len(info) == N, 10, "12 frames")
        wait_until(node._source.finished.is_set, 5, "the end of the file")
    finally:
        node.close()
    for i, m in enumerate(raw):
        assert (m.encoding, m.width, m.height, m.header.frame_id) == ("rgb8", W, H, "camera")
        np.testing.assert_array_equal(pixels(m), source[i])  # order and content
        decoded = cv2.cvtColor(
            cv2.imdecode(as_array(jpeg[i].data), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
        )
        assert jpeg[i].format == "jpeg"
        assert np.abs(decoded.astype(int) - source[i]).mean() < 3.0  # JPEG q95 tolerance
    stamps = [stamp(m) for m in raw]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert 0.03e9 < np.median(np.diff(stamps)) < 0.08e9  # played at 20 fps
    assert [stamp(m) for m in jpeg] == stamps
    assert [stamp(m) for m in info] == stamps
    assert list(info[0].k) == [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]
    assert (info[0].width, info[0].height, info[0].distortion_model) == (64, 48, "plumb_bob")


def test_source_that_vanishes_is_reopened_with_a_logged_reason(
    make_zenoh, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = tmp_path / "clip.avi"
    write_video(video)
    observer = make_zenoh("observer")
    frames: list = []
    observer.create_subscription(
        "/camera/image_raw", "sensor_msgs/msg/Image", frames.append, SENSOR_DATA
    )
    bus = make_zenoh(
        "camera",
        [
            "--ros-args",
            "-p",
            f"source:={video}",
            "-p",
            "fps:=100.0",
            "-p",
            "loop:=true",
            "-p",
            "reconnect_s:=0.05",
        ],
    )
    wait_until(lambda: observer.count_subscribers("/camera/image_raw") > 0, 10, "observer")
    caplog.set_level(logging.WARNING, logger="mm_ros.camera")
    node = CameraNode(bus)
    try:
        wait_until(lambda: len(frames) >= 3, 10, "first frames")
        hidden = video.rename(tmp_path / "away.avi")  # the source vanishes mid-stream
        wait_until(lambda: node._source.reconnects >= 3, 10, "three reconnect attempts")
        assert "reconnecting" in caplog.text
        assert "clip.avi" in caplog.text
        before = len(frames)
        hidden.rename(video)  # and comes back
        wait_until(lambda: len(frames) >= before + N, 10, "frames after the source returned")
    finally:
        node.close()


def test_missing_device_and_unreachable_url_are_clear_errors(make_zenoh, router: str) -> None:
    for source, expected in (
        ("/dev/video99", "does not exist"),
        ("rtsp://127.0.0.1:9/none", "could not open"),
    ):
        bus = make_zenoh("camera", ["--ros-args", "-p", f"source:={source}"])
        with pytest.raises(CameraDeviceError, match=expected):
            CameraNode(bus)
    proc = run_executable("camera", router, "source:=/no/such/file.avi")
    assert proc.returncode == 1, proc.stderr
    assert "camera: error:" in proc.stderr
    assert "/no/such/file.avi" in proc.stderr


def test_every_parameter_reaches_the_config(make_zenoh, tmp_path: Path) -> None:
    video, calib = tmp_path / "clip.avi", tmp_path / "calib.yaml"
    write_video(video)
    calib.write_text(CALIBRATION)
    overrides = {
        "source": str(video),
        "width": 64,
        "height": 48,
        "fps": 5.0,
        "fourcc": "MJPG",
        "loop": True,
        "reconnect_s": 0.5,
        "list_devices": True,
        "transport": "compressed",
        "jpeg_quality": 70,
        "image_topic": "img",
        "compressed_topic": "img/jpeg",
        "camera_info_topic": "info",
        "camera_info_url": f"file://{calib}",
        "frame_id": "cam",
    }
    assert set(overrides) == {f.name for f in dataclasses.fields(CameraConfig)}
    node = CameraNode(make_zenoh("camera", ros_args(overrides)))
    try:
        assert dataclasses.asdict(node.config) == overrides
        assert node._source.config.fourcc == "MJPG"
        assert node._source.config.reconnect_s == 0.5
    finally:
        node.close()


@pytest.mark.parametrize(
    ("param", "message"),
    [("transport:=jpeg", "transport must be one of"), ("jpeg_quality:=0", "jpeg_quality")],
)
def test_bad_parameters_are_config_errors(make_zenoh, param: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CameraNode(make_zenoh("camera", ["--ros-args", "-p", param]))


def test_http_stream_that_drops_is_reconnected_until_the_server_is_gone(
    make_zenoh, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_video(tmp_path / "clip.avi")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
    observer = make_zenoh("observer")
    frames: list = []
    observer.create_subscription(
        "/camera/image_raw", "sensor_msgs/msg/Image", frames.append, SENSOR_DATA
    )
    bus = make_zenoh("camera", ["--ros-args", "-p", f"source:={url}", "-p", "reconnect_s:=0.05"])
    wait_until(lambda: observer.count_subscribers("/camera/image_raw") > 0, 10, "observer")
    caplog.set_level(logging.WARNING, logger="mm_ros.camera")
    node = CameraNode(bus)
    try:  # each HTTP response ends after 12 frames: a stream that drops, reopened each time
        wait_until(lambda: len(frames) >= 2 * N, 10, "frames from two connections")
        assert "the stream stopped delivering; reconnecting" in caplog.text
        server.shutdown()
        server.server_close()
        attempts = node._source.reconnects
        wait_until(lambda: node._source.reconnects >= attempts + 3, 10, "reconnect attempts")
        assert "could not open url" in caplog.text
        assert node._source._thread is not None
        assert node._source._thread.is_alive()
    finally:
        node.close()
