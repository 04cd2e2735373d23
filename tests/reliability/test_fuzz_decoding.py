"""Property tests: every decoder turns any input into a value or its own clear error, never a crash.

What a subscription callback runs on each sample: CDR decoding of every subscribed type, the
attachment, image / compressed image / IMU / audio / camera-info / token decoding, and the
question limits. "Never a crash" means: only the documented error classes come out (the node
counts those and keeps serving); anything else would reach the executor's "callback raised".
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_ros.bus import naming
from mm_ros.core.audio import decode_audio_ros_drivers
from mm_ros.core.camera import decode_camera_info
from mm_ros.core.embeddings import decode_tokens
from mm_ros.core.errors import DecodeError, InterfaceError
from mm_ros.core.images import decode_compressed_image, decode_image
from mm_ros.core.imu import decode_imu
from mm_ros.interfaces import get_store
from mm_ros.llm.service import Query
from mm_ros.nodes.model_service import ModelServiceConfig, query_problem
from tests.reliability.fuzz import SUBSCRIBED_TYPES, Fuzzer

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STORE = get_store("jazzy")
ENCODINGS = ["rgb8", "bgr8", "rgba8", "mono8", "mono16", "yuv422", "nv12", "bayer_rggb8", "", "??"]
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@pytest.mark.parametrize("typename", SUBSCRIBED_TYPES)
@FAST
@given(data=st.binary(max_size=512))
def test_cdr_of_any_bytes_decodes_or_says_why(typename: str, data: bytes) -> None:
    with contextlib.suppress(InterfaceError):
        STORE.deserialize(b"\x00\x01\x00\x00" + data, typename)


@pytest.mark.parametrize("typename", SUBSCRIBED_TYPES)
@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_valid_cdr_decodes_or_says_why(typename: str, seed: int) -> None:
    fuzzer = Fuzzer(STORE, seed)
    for _ in range(8):
        payload, _ = fuzzer.malformed(typename)
        with contextlib.suppress(InterfaceError):
            STORE.deserialize(payload, typename)


@FAST
@given(data=st.one_of(st.none(), st.binary(max_size=64)))
def test_attachments_unpack_or_say_why(data: bytes | None) -> None:
    try:
        attachment = naming.unpack_attachment(data)
    except naming.BusNameError:
        return
    assert len(attachment.gid) == naming.GID_SIZE


@FAST
@given(
    encoding=st.sampled_from(ENCODINGS),
    width=st.integers(-2, 40_000),
    height=st.integers(-2, 40_000),
    step=st.integers(-2, 200_000),
    bigendian=st.booleans(),
    data=st.binary(max_size=4096),
)
def test_images_decode_or_say_why(  # noqa: PLR0917 - the drawn fields
    encoding: str, width: int, height: int, step: int, bigendian: bool, data: bytes
) -> None:
    try:
        frame = decode_image(encoding, width, height, step, bigendian, data)
    except DecodeError:
        return
    assert frame.rgb().shape == (height, width, 3)


@FAST
@given(
    fmt=st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "tiff", ""]),
    data=st.binary(max_size=2048),
)
def test_compressed_images_decode_or_say_why(fmt: str, data: bytes) -> None:
    try:
        frame = decode_compressed_image(fmt, data)
    except DecodeError:
        return
    assert frame.width > 0
    assert frame.height > 0


@FAST
@given(
    values=st.lists(floats, min_size=10, max_size=10),
    covariance=st.lists(floats, min_size=9, max_size=9),
)
def test_imu_samples_are_finite_or_refused(values: list[float], covariance: list[float]) -> None:
    try:
        sample = decode_imu(values[:4], covariance, values[4:7], covariance, values[7:], covariance)
    except DecodeError:
        return
    assert np.isfinite(sample.linear_acceleration_mps2).all()
    assert np.isfinite(sample.angular_velocity_rps).all()


@FAST
@given(
    data=st.binary(max_size=2048),
    channels=st.integers(-1, 300),
    rate=st.integers(-1, 10_000_000),
    fmt=st.sampled_from(["S16LE", "S32LE", "F32LE", "U8", "S24LE", "bogus", ""]),
    coding=st.sampled_from(["wave", "mp3", ""]),
)
def test_audio_chunks_decode_or_say_why(
    data: bytes, channels: int, rate: int, fmt: str, coding: str
) -> None:
    try:
        chunk = decode_audio_ros_drivers(data, channels, rate, fmt, coding)
    except DecodeError:
        return
    assert np.isfinite(chunk.samples).all()


@FAST
@given(
    width=st.integers(-1, 100_000),
    height=st.integers(-1, 100_000),
    model=st.sampled_from(["plumb_bob", "rational_polynomial", "equidistant", "", "x"]),
    d=st.lists(floats, max_size=14),
    k=st.lists(floats, max_size=12),
)
def test_camera_info_decodes_or_says_why(
    width: int, height: int, model: str, d: list[float], k: list[float]
) -> None:
    try:
        camera = decode_camera_info(width, height, model, d, k)
    except DecodeError:
        return
    assert camera.width == width


@FAST
@given(
    shape=st.lists(st.integers(-3, 5000), max_size=4),
    dtype=st.sampled_from(["float32", "float16", "int8", ""]),
    data=st.binary(max_size=1024),
)
def test_token_embeddings_decode_or_say_why(shape: list[int], dtype: str, data: bytes) -> None:
    try:
        tokens = decode_tokens(shape, dtype, data)
    except DecodeError:
        return
    assert tokens.ndim == 2


@FAST
@given(
    question=st.text(max_size=64) | st.just("x" * 100_000),
    timeout_s=floats,
    window_s=floats,
    max_new_tokens=st.integers(-1, 2**32),
)
def test_question_limits_pass_or_name_the_field(
    question: str, timeout_s: float, window_s: float, max_new_tokens: int
) -> None:
    config = ModelServiceConfig(device="cpu")
    query = Query(question, timeout_s=timeout_s, window_s=window_s, max_new_tokens=max_new_tokens)
    problem = query_problem(query, config)
    ok = (
        len(question) <= config.max_question_chars
        and math.isfinite(timeout_s)
        and timeout_s > 0
        and math.isfinite(window_s)
        and window_s >= 0
        and 0 <= max_new_tokens <= config.max_new_tokens_limit
    )
    assert (problem is None) == ok
    if problem is not None:
        assert any(
            name in problem for name in ("question", "timeout_s", "window_s", "max_new_tokens")
        )
