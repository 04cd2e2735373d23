"""Image, CompressedImage and CameraInfo decoding against OpenCV's own conversions."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from mm_ros.core.camera import decode_camera_info, encode_camera_info
from mm_ros.core.errors import (
    DecodeError,
    InvalidValueError,
    SizeMismatchError,
    UnsupportedEncodingError,
)
from mm_ros.core.images import (
    decode_compressed_image,
    decode_image,
    encode_compressed_image,
    encode_image,
)
from mm_ros.core.sensors import Bearing, CameraModel, Frame, PixelFormat, Side

W, H = 64, 48
RNG = np.random.default_rng(0)

# encoding -> (bytes per pixel in the first plane, reference: packed (rows, row_bytes) -> expected)
REFERENCES = {
    "rgb8": (3, lambda p: p.reshape(H, W, 3)),
    "bgr8": (3, lambda p: cv2.cvtColor(p.reshape(H, W, 3), cv2.COLOR_BGR2RGB)),
    "rgba8": (4, lambda p: cv2.cvtColor(p.reshape(H, W, 4), cv2.COLOR_RGBA2RGB)),
    "bgra8": (4, lambda p: cv2.cvtColor(p.reshape(H, W, 4), cv2.COLOR_BGRA2RGB)),
    "mono8": (1, lambda p: p.reshape(H, W)),
    "yuv422": (2, lambda p: cv2.cvtColor(p.reshape(H, W, 2), cv2.COLOR_YUV2RGB_UYVY)),
    "yuv422_yuy2": (2, lambda p: cv2.cvtColor(p.reshape(H, W, 2), cv2.COLOR_YUV2RGB_YUY2)),
    "nv12": (1, lambda p: cv2.cvtColor(p, cv2.COLOR_YUV2RGB_NV12)),
}


def wire(packed: np.ndarray, pad: int) -> tuple[int, bytes]:
    """Rows of ``packed`` followed by ``pad`` garbage bytes each: (step, data)."""
    rows, row_bytes = packed.shape
    out = np.full((rows, row_bytes + pad), 0xAB, dtype=np.uint8)
    out[:, :row_bytes] = packed
    return row_bytes + pad, out.tobytes()


@pytest.mark.parametrize("pad", [0, 7, 64])
@pytest.mark.parametrize("encoding", sorted(REFERENCES))
def test_encoding_matches_opencv_exactly(encoding: str, pad: int) -> None:
    bpp, reference = REFERENCES[encoding]
    rows = H * 3 // 2 if encoding == "nv12" else H
    packed = RNG.integers(0, 256, (rows, W * bpp), dtype=np.uint8)
    step, data = wire(packed, pad)
    frame = decode_image(encoding, W, H, step, False, data, stamp_ns=5, frame_id="cam")
    expected = reference(packed)
    assert frame.pixels.shape == expected.shape
    np.testing.assert_array_equal(frame.pixels, expected)
    assert frame.pixel_format is (PixelFormat.MONO8 if encoding == "mono8" else PixelFormat.RGB8)
    assert (frame.stamp_ns, frame.frame_id, frame.width, frame.height) == (5, "cam", W, H)


@pytest.mark.parametrize(("encoding", "bpp"), [("rgb8", 3), ("mono8", 1), ("mono16", 2)])
def test_same_order_encodings_decode_without_copy(encoding: str, bpp: int) -> None:
    buffer = RNG.integers(0, 256, H * (W * bpp + 4), dtype=np.uint8)
    frame = decode_image(encoding, W, H, W * bpp + 4, False, buffer)
    assert np.shares_memory(frame.pixels, buffer)


@pytest.mark.parametrize("pad", [0, 6, 7])
@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_respects_byte_order_and_step(bigendian: bool, pad: int) -> None:
    values = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    packed = values.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(H, W * 2)
    step, data = wire(packed, pad)
    frame = decode_image("mono16", W, H, step, bigendian, data)
    assert frame.pixel_format is PixelFormat.MONO16
    assert frame.pixels.dtype.isnative
    np.testing.assert_array_equal(frame.pixels, values)
    np.testing.assert_array_equal(frame.rgb()[:, :, 1], (values >> 8).astype(np.uint8))


def test_mono_to_rgb_matches_opencv() -> None:
    gray = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    frame = decode_image("mono8", W, H, W, False, gray.tobytes())
    np.testing.assert_array_equal(frame.rgb(), cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))


def test_yuv_grey_is_grey() -> None:
    uyvy = np.full((H, W * 2), 128, dtype=np.uint8)
    frame = decode_image("yuv422", W, H, W * 2, False, uyvy.tobytes())
    # OpenCV's YUV is BT.601 video range: Y 128 -> (128 - 16) * 255 / 219 = 130
    assert np.abs(frame.pixels.astype(int) - 130).max() <= 1


def test_image_fields_round_trip() -> None:
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    frame = Frame(1, "cam", rgb, PixelFormat.RGB8)
    fields = encode_image(frame)
    back = decode_image(*fields)
    np.testing.assert_array_equal(back.pixels, rgb)
    mono16 = Frame(1, "cam", RNG.integers(0, 65536, (H, W), dtype=np.uint16), PixelFormat.MONO16)
    np.testing.assert_array_equal(decode_image(*encode_image(mono16)).pixels, mono16.pixels)


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (("rgb8", 1920, 1080, 1920, False, b"\0" * 1920 * 1080), SizeMismatchError,
         ["step 1920 != width*3 (5760)", "rgb8"]),
        (("rgb8", 4, 2, 12, False, b"\0" * 23), SizeMismatchError, ["23 bytes", "24"]),
        (("rgb8", 4, 2, 12, False, b"\0" * 25), SizeMismatchError, ["25 bytes", "24"]),
        (("bayer_rggb8", 4, 2, 4, False, b"\0" * 8), UnsupportedEncodingError,
         ["bayer_rggb8", "rgb8"]),
        (("rgb8", 0, 2, 0, False, b""), InvalidValueError, ["width 0"]),
        (("rgb8", 100_000, 2, 300_000, False, b""), InvalidValueError, ["width 100000"]),
        (("mono8", 4, 70_000, 4, False, b""), InvalidValueError, ["height 70000"]),
        (("yuv422", 5, 2, 10, False, b"\0" * 20), SizeMismatchError, ["multiple of 2"]),
        (("nv12", 4, 3, 4, False, b"\0" * 18), SizeMismatchError, ["height 3"]),
    ],
)  # fmt: skip
def test_malformed_images_name_field_expected_found(args, error, words) -> None:
    with pytest.raises(error) as info:
        decode_image(*args)
    for word in words:
        assert word in str(info.value)
    assert info.value.field in {"step", "data", "encoding", "width", "height"}


def test_wrong_array_dtype_is_rejected() -> None:
    with pytest.raises(DecodeError, match="uint8"):
        decode_image("mono8", 2, 2, 2, False, np.zeros(4, dtype=np.int16))


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_compressed_matches_opencv(codec: str) -> None:
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[:, : W // 2] = (200, 30, 30)
    rgb[:, W // 2 :] = (20, 40, 220)
    data = encode_compressed_image(Frame(0, "", rgb, PixelFormat.RGB8), codec)
    frame = decode_compressed_image(f"rgb8; {codec} compressed bgr8", data, stamp_ns=3)
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR),
                             cv2.COLOR_BGR2RGB)  # fmt: skip
    np.testing.assert_array_equal(frame.pixels, reference)
    if codec == "png":
        np.testing.assert_array_equal(frame.pixels, rgb)
    assert frame.stamp_ns == 3


def test_compressed_mono_png() -> None:
    gray = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    ok, png = cv2.imencode(".png", gray)
    assert ok
    frame = decode_compressed_image("png", png.tobytes())
    assert frame.pixel_format is PixelFormat.MONO8
    np.testing.assert_array_equal(frame.pixels, gray)


@pytest.mark.parametrize(
    ("fmt", "data", "error"),
    [
        ("jpeg", b"", SizeMismatchError),
        ("jpeg", b"not a jpeg at all", DecodeError),
        ("webp", b"RIFF....", UnsupportedEncodingError),
    ],
)
def test_malformed_compressed(fmt: str, data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error, match="CompressedImage"):
        decode_compressed_image(fmt, data)


K = (500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0)


def test_camera_info_round_trip_and_bearings() -> None:
    camera = decode_camera_info(640, 480, "plumb_bob", [0.1, -0.2, 0, 0, 0], K, frame_id="cam")
    assert (camera.fx, camera.cy, camera.d[:2]) == (500.0, 239.5, (0.1, -0.2))
    fields = encode_camera_info(camera)
    assert fields.p[:4] == (500.0, 0.0, 319.5, 0.0)
    again = decode_camera_info(fields.width, fields.height, fields.distortion_model, fields.d,
                               fields.k)  # fmt: skip
    assert again.k == camera.k
    assert camera.bearing(319.5, 239.5) == Bearing(0.0, 0.0)
    left = camera.bearing(0.0, 239.5)
    assert left.azimuth_deg == pytest.approx(math.degrees(math.atan(319.5 / 500)))
    assert left.side() is Side.LEFT
    assert camera.bearing(639, 100).side() is Side.RIGHT
    for u, v in [(10.0, 20.0), (600.0, 470.0), (319.5, 0.0)]:
        assert camera.pixel(camera.bearing(u, v)) == pytest.approx((u, v))


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"width": 0}, InvalidValueError, "width"),
        ({"distortion_model": "fisheye9"}, UnsupportedEncodingError, "distortion_model"),
        ({"d": [0.0] * 4}, SizeMismatchError, "d"),
        ({"k": K[:8]}, SizeMismatchError, "k"),
        ({"k": (0.0,) * 9}, InvalidValueError, "k"),
        ({"k": (math.nan, *K[1:])}, InvalidValueError, "k"),
    ],
)
def test_malformed_camera_info(kwargs, error, field) -> None:
    args = {"width": 640, "height": 480, "distortion_model": "plumb_bob", "d": [0.0] * 5, "k": K}
    with pytest.raises(error) as info:
        decode_camera_info(**{**args, **kwargs})
    assert info.value.field == field


def test_camera_model_is_plain_value() -> None:
    camera = CameraModel(640, 480, K, "", ())
    assert camera.bearing(319.5, 0).elevation_deg > 0  # up is +


def test_rclpy_array_fields_decode() -> None:
    """rclpy hands uint8[] fields over as array.array('B')."""
    import array

    gray = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    frame = decode_image("mono8", W, H, W, False, array.array("B", gray.tobytes()))
    np.testing.assert_array_equal(frame.pixels, gray)
