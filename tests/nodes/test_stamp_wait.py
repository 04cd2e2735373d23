"""A question about stamp T waits (``stamp_wait_s`` at most) for data still on its way to T.

Without the wait, a replay on a loaded machine answered from whatever frame had arrived, and two
replays of one bag gave different answers (CI, stop 15).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest

from mm_ros.core.embeddings import encode_tokens
from mm_ros.core.errors import ConfigError
from mm_ros.core.sensors import Frame, PixelFormat
from mm_ros.core.windows import FrameWindow, SensorWindows, WindowConfig
from mm_ros.llm.service import Query
from mm_ros.nodes.model_service import ModelServiceConfig, ServiceCore

NS = 1_000_000_000
T = 1_700_000_010 * NS
FRAME_NS = NS // 30


def frame(stamp_ns: int) -> Frame:
    pixels = np.random.default_rng(stamp_ns % 1000).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return Frame(stamp_ns, "camera", pixels, PixelFormat.RGB8)


@pytest.fixture(scope="module")
def loaded() -> Iterator[ServiceCore]:
    """The embedded mm-tiny, loaded once; each test gives it fresh windows and settings."""
    core = ServiceCore(ModelServiceConfig(device="cpu"), None, logging.getLogger("stamp_wait"))  # type: ignore[arg-type]
    core.configure()
    yield core
    core.close()


@pytest.fixture
def core(loaded: ServiceCore) -> Iterator[ServiceCore]:
    window = FrameWindow(WindowConfig(span_ns=5 * NS, max_items=100))
    for k in range(3, 0, -1):  # frames up to one period before T
        window.add(frame(T - k * FRAME_NS))
    loaded.inputs = SimpleNamespace(windows=SensorWindows(image=window), camera=None)  # type: ignore[assignment]
    loaded.activate()
    yield loaded
    loaded.deactivate()


def ask(core: ServiceCore, at_ns: int | None) -> object:
    query = Query("where is the red cube?", modalities=("image",), at_ns=at_ns, timeout_s=30.0)
    return core.ask(query, None, lambda: False)


def stages(answer: object) -> dict[str, float]:
    return dict(answer.latency_s)  # type: ignore[attr-defined]


def test_the_frame_at_the_stamp_is_waited_for(core: ServiceCore) -> None:
    core.config = ModelServiceConfig(device="cpu", stamp_wait_s=5.0)
    late = threading.Timer(0.3, lambda: core.inputs.windows.image.add(frame(T)))
    late.start()
    answer = ask(core, T)
    late.join()
    assert answer.error == ""  # type: ignore[attr-defined]
    assert answer.image.stamp_ns == T  # type: ignore[attr-defined]  # not the frame before it
    assert 0.0 < stages(answer)["stamp_wait"] < 5.0  # the frame came, so no full wait


def test_a_stream_that_stays_behind_costs_stamp_wait_s_then_answers_with_what_is_there(
    core: ServiceCore, caplog: pytest.LogCaptureFixture
) -> None:
    core.config = ModelServiceConfig(device="cpu", stamp_wait_s=0.2)
    with caplog.at_level(logging.WARNING, "stamp_wait"):
        answer = ask(core, T)
    assert answer.error == ""  # type: ignore[attr-defined]
    assert answer.image.stamp_ns == T - FRAME_NS  # type: ignore[attr-defined]
    assert stages(answer)["stamp_wait"] >= 0.2
    assert "image data still older after stamp_wait_s 0.20 s" in caplog.text


def test_no_wait_for_data_already_there_or_for_the_newest(core: ServiceCore) -> None:
    core.config = ModelServiceConfig(device="cpu", stamp_wait_s=5.0)
    past = ask(core, T - 2 * FRAME_NS)
    assert past.image.stamp_ns == T - 2 * FRAME_NS  # type: ignore[attr-defined]
    assert stages(past)["stamp_wait"] < 1.0  # far below stamp_wait_s
    newest = ask(core, None)
    assert newest.image.stamp_ns == T - FRAME_NS  # type: ignore[attr-defined]
    assert "stamp_wait" not in stages(newest)


def test_stamp_wait_s_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match=r"stamp_wait_s must be >= 0, found -1\.0"):
        ModelServiceConfig(stamp_wait_s=-1.0)


@pytest.fixture(scope="module")
def remote_imu() -> Iterator[ServiceCore]:
    """mm-tiny whose IMU tokens come from an adapter node (here: handed to on_embeddings)."""
    config = ModelServiceConfig(device="cpu", remote_modalities="imu", stamp_wait_s=5.0)
    core = ServiceCore(config, None, logging.getLogger("stamp_wait"))  # type: ignore[arg-type]
    core.configure()
    core.inputs = SimpleNamespace(windows=SensorWindows(), camera=None)  # type: ignore[assignment]
    core.activate()
    yield core
    core.deactivate()
    core.close()


def imu_block(core: ServiceCore, end_ns: int) -> SimpleNamespace:
    """A TokenEmbeddings message of the model's own IMU adapter covering the second to end_ns."""
    backend = core.engine.backend  # type: ignore[union-attr]
    identity, spec = backend.identities["imu"], backend.sessions["imu"].spec
    tokens = np.zeros((spec.token_count, spec.llm_width), np.float32)
    shape, dtype, data = encode_tokens(tokens, "float32")

    def time(ns: int) -> SimpleNamespace:
        return SimpleNamespace(sec=ns // NS, nanosec=ns % NS)

    return SimpleNamespace(
        header=SimpleNamespace(stamp=time(end_ns), frame_id="imu"),
        window_start=time(end_ns - NS),
        modality="imu",
        adapter_id=identity.adapter_id,
        checkpoint_sha256=identity.checkpoint_sha256,
        shape=shape,
        dtype=dtype,
        data=data,
        source_width=0,
    )


def test_a_remote_token_block_at_the_stamp_is_waited_for(remote_imu: ServiceCore) -> None:
    core = remote_imu
    core.on_embeddings(imu_block(core, T - 200_000_000))  # the adapter's block before T
    late = threading.Timer(0.3, core.on_embeddings, (imu_block(core, T),))
    late.start()
    query = Query("how am I moving?", modalities=("imu",), at_ns=T, timeout_s=30.0)
    answer = core.ask(query, None, lambda: False)
    late.join()
    assert answer.error == ""
    assert answer.stamp_ns == T  # the block that reaches the stamp, not the one before it
    assert 0.0 < stages(answer)["stamp_wait"] < 5.0
