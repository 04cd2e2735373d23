"""Adapter nodes over the zenoh bus: tokens of the newest data, identity, lifecycle, errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mm_ros.bus import SENSOR_DATA
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.embeddings import decode_tokens
from mm_ros.core.errors import ConfigError
from mm_ros.core.lifecycle import LifecycleError
from mm_ros.nodes.adapter_node import CameraAdapterNode, ImuAdapterNode
from mm_ros.nodes.sim_world_node import SimWorldNode
from tests.nodes.helpers import ros_args

if TYPE_CHECKING:
    from collections.abc import Callable

WAIT_S = 30.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mm_ros.llm.tiny import build_random_default

    return build_random_default(tmp_path_factory.mktemp("model") / "tiny", seed=0)


@pytest.mark.parametrize(
    ("node_class", "modality"), [(CameraAdapterNode, "image"), (ImuAdapterNode, "imu")]
)
def test_publishes_tokens_with_the_adapter_identity(
    make_zenoh: Callable[..., Any], model_dir: Path, node_class: Any, modality: str
) -> None:
    from mm_ros.adapters.checkpoint import read_spec, sha256_file

    world = SimWorldNode(make_zenoh("sim_world", ["--ros-args", "-p", "seed:=3"]))
    listener = make_zenoh("listener")
    got: list[Any] = []
    listener.create_subscription(
        f"/embeddings/{modality}", "mm_ros/msg/TokenEmbeddings", got.append, SENSOR_DATA
    )
    node = node_class(make_zenoh(node_class.name, ros_args({"model_dir": str(model_dir)})))
    assert node.session is None  # the constructor loads nothing
    node.start()
    wait_until(lambda: len(got) >= 2, WAIT_S, "two TokenEmbeddings")
    folder = model_dir / "adapters" / modality
    spec = read_spec(folder)
    message = got[-1]
    assert message.modality == modality
    assert message.adapter_id == spec.name
    assert message.checkpoint_sha256 == sha256_file(folder / "model.safetensors")
    tokens = decode_tokens(message.shape, message.dtype, message.data)
    assert tokens.shape == (spec.token_count, spec.llm_width)
    if modality == "image":
        assert message.source_width == 640  # the world's camera
        assert message.input_to_source[0] > 0
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got]
    assert len(set(stamps)) == len(stamps)  # new data only, never the same window twice
    node.close()
    world.close()


def test_an_adapter_of_another_modality_is_refused(
    make_zenoh: Callable[..., Any], model_dir: Path
) -> None:
    args = ros_args({"adapter_dir": str(model_dir / "adapters" / "audio")})
    node = CameraAdapterNode(make_zenoh("camera_adapter", args))
    with pytest.raises(
        LifecycleError, match="encodes audio, this node camera_adapter encodes image"
    ):
        node.start()
    node.close()


def test_bad_parameters_name_the_value(make_zenoh: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match=r"rate_hz must be > 0, found 0\.0"):
        CameraAdapterNode(make_zenoh("camera_adapter", ros_args({"rate_hz": 0.0})))
