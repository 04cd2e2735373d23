"""Decode ``sensor_msgs/Image`` and ``CompressedImage`` fields into `Frame` values.

The decoders take plain fields (never message objects). Colour encodings become RGB8. rgb8, mono8
and native-order mono16 decode to views of ``data`` without a copy, also with a padded ``step``.
bgr8, rgba8 and bgra8 take one OpenCV channel conversion (a copy, 0.4 ms at 1080p): a reordered
numpy view would be free here but cost 6 ms wherever it is made contiguous later (bench/REPORT.md).
YUV encodings and codecs go through OpenCV too; OpenCV is imported only when needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mm_ros.core.errors import (
    DecodeError,
    SizeMismatchError,
    UnsupportedEncodingError,
    require_in_range,
)
from mm_ros.core.sensors import Frame, PixelFormat

if TYPE_CHECKING:
    import array
    from typing import TypeAlias

    from numpy.typing import NDArray

    # what a uint8[] field is in each runtime: bytes (rosbags/zenoh), array('B') (rclpy), views
    BytesLike: TypeAlias = bytes | bytearray | memoryview | array.array[int]

# Larger than any camera we expect (16K), small enough that width*height*4 fits comfortably:
# a corrupted header must not make us allocate gigabytes.
MAX_SIDE_PX = 16384


class _Layout(NamedTuple):
    bytes_per_pixel: int  # in a row of the first plane
    channels: int
    width_multiple: int  # yuv422 pairs two pixels, nv12 subsamples 2x2
    height_multiple: int


_LAYOUTS = {
    "rgb8": _Layout(3, 3, 1, 1),
    "bgr8": _Layout(3, 3, 1, 1),
    "rgba8": _Layout(4, 4, 1, 1),
    "bgra8": _Layout(4, 4, 1, 1),
    "mono8": _Layout(1, 1, 1, 1),
    "8uc1": _Layout(1, 1, 1, 1),
    "mono16": _Layout(2, 1, 1, 1),
    "16uc1": _Layout(2, 1, 1, 1),
    "yuv422": _Layout(2, 2, 2, 1),  # UYVY
    "uyvy": _Layout(2, 2, 2, 1),
    "yuv422_yuy2": _Layout(2, 2, 2, 1),  # YUYV
    "yuyv": _Layout(2, 2, 2, 1),
    "nv12": _Layout(1, 1, 2, 2),  # Y plane, then interleaved UV at half resolution
}
ENCODINGS = tuple(_LAYOUTS)


def as_uint8(data: BytesLike | NDArray[Any], field: str = "data") -> NDArray[np.uint8]:
    """Return ``data`` (bytes, bytearray, memoryview or array) as a flat uint8 view, no copy."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise DecodeError(
                f"{field} dtype {data.dtype} != uint8",
                field=field,
                expected="uint8",
                found=str(data.dtype),
            )
        return data.reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def check_size(what: str, width: int, height: int) -> None:
    """Raise `InvalidValueError` for a zero or absurd width/height."""
    require_in_range(what, "width", width, MAX_SIDE_PX)
    require_in_range(what, "height", height, MAX_SIDE_PX)


def decode_image(  # noqa: PLR0917 - the fields of sensor_msgs/Image, in order
    encoding: str,
    width: int,
    height: int,
    step: int,
    is_bigendian: bool,
    data: BytesLike | NDArray[Any],
    *,
    stamp_ns: int = 0,
    frame_id: str = "",
) -> Frame:
    """Decode the fields of a ``sensor_msgs/Image`` into a `Frame` (colour becomes RGB8)."""
    key = encoding.lower()
    layout = _LAYOUTS.get(key)
    if layout is None:
        raise UnsupportedEncodingError(
            f"Image encoding {encoding!r} is not one of {', '.join(ENCODINGS)}",
            field="encoding",
            expected=ENCODINGS,
            found=encoding,
        )
    check_size("Image", width, height)
    for name, value, multiple in (
        ("width", width, layout.width_multiple),
        ("height", height, layout.height_multiple),
    ):
        if value % multiple:
            raise SizeMismatchError(
                f"Image {name} {value} is not a multiple of {multiple} for encoding {encoding}",
                field=name,
                expected=f"multiple of {multiple}",
                found=value,
            )
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise SizeMismatchError(
            f"Image step {step} != width*{layout.bytes_per_pixel} ({row_bytes}) "
            f"for encoding {encoding}",
            field="step",
            expected=f">= {row_bytes}",
            found=step,
        )
    rows = height * 3 // 2 if key == "nv12" else height
    flat = as_uint8(data)
    if flat.size != step * rows:
        raise SizeMismatchError(
            f"Image data is {flat.size} bytes != step*{'height*3/2' if key == 'nv12' else 'height'}"
            f" ({step * rows}) for encoding {encoding} {width}x{height}",
            field="data",
            expected=step * rows,
            found=flat.size,
        )
    # (rows, row_bytes) view that skips the padding at the end of each row
    plane = np.lib.stride_tricks.as_strided(flat, shape=(rows, row_bytes), strides=(step, 1))
    plane.flags.writeable = False
    pixels, pixel_format = _convert(key, plane, width, height, is_bigendian)
    return Frame(stamp_ns=stamp_ns, frame_id=frame_id, pixels=pixels, pixel_format=pixel_format)


def _convert(
    key: str, plane: NDArray[np.uint8], width: int, height: int, is_bigendian: bool
) -> tuple[NDArray[Any], PixelFormat]:
    if key == "rgb8":
        return plane.reshape(height, width, 3), PixelFormat.RGB8
    if key in ("mono8", "8uc1"):
        return plane, PixelFormat.MONO8
    if key in ("mono16", "16uc1"):
        px16 = plane.view(np.dtype(">u2" if is_bigendian else "<u2"))  # (H, W), may be unaligned
        if not px16.dtype.isnative:
            px16 = px16.astype(np.uint16)  # the one copy: wire order differs from the host's
        return px16, PixelFormat.MONO16
    import cv2

    if key in ("bgr8", "rgba8", "bgra8"):  # rows may be padded: OpenCV takes the row stride
        swap = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB}
        return cv2.cvtColor(plane.reshape(height, width, len(key) - 1), swap[key]), PixelFormat.RGB8
    code = {
        "yuv422": cv2.COLOR_YUV2RGB_UYVY,
        "uyvy": cv2.COLOR_YUV2RGB_UYVY,
        "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
        "yuyv": cv2.COLOR_YUV2RGB_YUY2,
        "nv12": cv2.COLOR_YUV2RGB_NV12,
    }[key]
    src = np.ascontiguousarray(plane)
    if key != "nv12":
        src = src.reshape(height, width, 2)
    return cv2.cvtColor(src, code), PixelFormat.RGB8


COMPRESSED_FORMATS = ("jpeg", "png")


def decode_compressed_image(
    format: str,
    data: BytesLike | NDArray[Any],
    *,
    stamp_ns: int = 0,
    frame_id: str = "",
) -> Frame:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg or png) into an RGB8 or mono `Frame`.

    ``format`` is either the codec name or image_transport's ``"<encoding>; jpeg compressed
    <codec encoding>"`` form; only the codec matters here, OpenCV reads the actual layout.
    """
    codec = _codec_of(format)
    flat = as_uint8(data)
    if flat.size == 0:
        raise SizeMismatchError(
            f"CompressedImage ({codec}) data is empty",
            field="data",
            expected="> 0 bytes",
            found=0,
        )
    import cv2

    decoded: NDArray[Any] | None = cv2.imdecode(flat, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise DecodeError(
            f"CompressedImage data ({flat.size} bytes) is not a valid {codec} image",
            field="data",
            expected=f"{codec} bytes",
            found=f"{bytes(flat[:8])!r}...",
        )
    if decoded.ndim == 2:  # noqa: PLR2004 - grey
        fmt = PixelFormat.MONO16 if decoded.dtype == np.uint16 else PixelFormat.MONO8
        return Frame(stamp_ns=stamp_ns, frame_id=frame_id, pixels=decoded, pixel_format=fmt)
    if decoded.dtype != np.uint8:
        decoded = (decoded >> 8).astype(np.uint8)
    code = cv2.COLOR_BGRA2RGB if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB  # noqa: PLR2004
    rgb = cv2.cvtColor(decoded, code)
    return Frame(stamp_ns=stamp_ns, frame_id=frame_id, pixels=rgb, pixel_format=PixelFormat.RGB8)


def _codec_of(format: str) -> str:
    text = format.lower()
    for codec in COMPRESSED_FORMATS:
        if codec in text:
            return codec
    raise UnsupportedEncodingError(
        f"CompressedImage format {format!r} is neither jpeg nor png",
        field="format",
        expected=COMPRESSED_FORMATS,
        found=format,
    )


class ImageFields(NamedTuple):
    """Field values of a ``sensor_msgs/Image`` (the node copies them into a message)."""

    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: bool
    data: bytes


def encode_image(frame: Frame) -> ImageFields:
    """Return ``sensor_msgs/Image`` fields for ``frame`` (rgb8, mono8 or little-endian mono16)."""
    pixels = np.ascontiguousarray(frame.pixels)
    if frame.pixel_format is PixelFormat.MONO16:
        pixels = pixels.astype("<u2", copy=False)
    itemsize = pixels.dtype.itemsize
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])  # noqa: PLR2004
    return ImageFields(
        encoding=frame.pixel_format.value,
        width=frame.width,
        height=frame.height,
        step=frame.width * channels * itemsize,
        is_bigendian=False,
        data=pixels.tobytes(),
    )


def encode_compressed_image(frame: Frame, codec: str = "jpeg", quality: int = 90) -> bytes:
    """Return ``frame`` compressed as jpeg (``quality`` 0..100) or png bytes."""
    import cv2

    if codec not in COMPRESSED_FORMATS:
        raise UnsupportedEncodingError(
            f"codec {codec!r} is neither jpeg nor png",
            field="codec",
            expected=COMPRESSED_FORMATS,
            found=codec,
        )
    pixels: NDArray[Any] = np.ascontiguousarray(frame.pixels)
    if frame.pixel_format is PixelFormat.RGB8:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if codec == "jpeg" else []
    ok, buf = cv2.imencode("." + ("jpg" if codec == "jpeg" else "png"), pixels, params)
    if not ok:
        raise DecodeError(
            f"OpenCV could not encode a {frame.width}x{frame.height} frame as {codec}",
            field="frame",
            expected=f"encodable as {codec}",
            found=frame.pixel_format.value,
        )
    return bytes(buf.tobytes())
