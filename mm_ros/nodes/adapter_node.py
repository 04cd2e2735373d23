"""``camera_adapter``, ``audio_adapter``, ``imu_adapter``: encode a sensor near where it is.

Each runs one modality adapter of a model (``model_dir``, or an ``adapter_dir`` of its own) on
the newest sensor data, at most ``rate_hz`` times a second and only when new data arrived, and
publishes ``embeddings/<modality>`` (mm_ros/msg/TokenEmbeddings): tokens already in the language
model's space, far smaller than the frames. A ``model_service`` with
``remote_modalities:=<modality>`` in the same namespace answers from them; it refuses tokens
whose adapter id or checkpoint hash is not its own. Reports its input's health and the input it
dropped (per topic and cause) on /diagnostics.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mm_ros.bus.naming import SENSOR_DATA
from mm_ros.core.diagnostics import Entry
from mm_ros.core.embeddings import encode_tokens
from mm_ros.core.errors import ConfigError
from mm_ros.core.health import InputCounters, assess
from mm_ros.core.sensors import Modality
from mm_ros.nodes import convert
from mm_ros.nodes.diagnostics import DiagnosticsPublisher, DroppedInput
from mm_ros.nodes.lifecycle import LifecycleNode, ManagedConfig
from mm_ros.nodes.params import declare_config, param
from mm_ros.nodes.runner import run_node
from mm_ros.nodes.sensor_inputs import SensorInputs, SensorInputsConfig

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus
    from mm_ros.core.lifecycle import State
    from mm_ros.llm.service import Block

NS = 1_000_000_000
log = logging.getLogger("mm_ros.adapter")


@dataclass(frozen=True)
class AdapterNodeConfig(SensorInputsConfig, ManagedConfig):
    """Parameters of the adapter nodes."""

    model_dir: str = param("", "model whose adapter runs here; empty = the embedded default")
    adapter_dir: str = param("", "adapter checkpoint folder; overrides model_dir")
    runtimes: str = param("tensorrt,onnxruntime,torch", "adapter runtimes, fastest first")
    device: str = param("auto", "torch runtimes: auto (cuda when visible), cpu, cuda, cuda:N")
    engine_cache_dir: str = param("engines/cache", "TensorRT engine cache folder")
    rate_hz: float = param(10.0, "encode at most this often (newest data only)")
    dtype: str = param("float32", "token dtype on the wire: float32 or float16")
    diagnostics_period_s: float = param(1.0, "seconds between /diagnostics messages")
    diagnostics_topic: str = param("/diagnostics", "diagnostic_msgs/DiagnosticArray")
    stale_after_s: float = param(1.0, "input data older than this is reported as WARN")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("rate_hz", "diagnostics_period_s", "stale_after_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, found {getattr(self, name)}")
        if self.dtype not in {"float32", "float16"}:
            raise ConfigError(f"dtype must be float32 or float16, found {self.dtype!r}")
        from mm_ros.engines.device import check_device

        check_device(self.device)


class AdapterNode(LifecycleNode):
    """Sensor intake for one modality + its adapter + a publisher of TokenEmbeddings.

    Managed: configure loads the adapter, activate starts encoding, deactivate pauses,
    cleanup releases the runtime (``autostart`` does the first two at start).
    """

    name = "adapter"
    modality: ClassVar[str] = "image"
    description = __doc__ or ""
    Config = AdapterNodeConfig

    def __init__(self, bus: Bus) -> None:
        from mm_ros.llm.service import block_source

        self.config = declare_config(bus, AdapterNodeConfig)
        super().__init__(bus, autostart=self.config.autostart)
        self.inputs = SensorInputs(bus, self.config, bus.drops, (self.modality,), False)
        self.session: Any = None  # loaded in configure
        self.identity = ("", "")
        self._block_source = block_source
        self._last_key: tuple[Any, ...] | None = None
        self._publisher = bus.create_publisher(
            f"embeddings/{self.modality}", "mm_ros/msg/TokenEmbeddings", SENSOR_DATA
        )
        self._make = bus.msg("mm_ros/msg/TokenEmbeddings")
        self._timer: Any = None
        # held while a block is encoded and published: deactivate (or shutdown, from another
        # thread) waits for the block in hand instead of pulling the node from under it
        self._encoding = threading.Lock()
        self._diagnostics = DiagnosticsPublisher(bus, self.config.diagnostics_topic)
        self._dropped = DroppedInput(bus.node_name, bus.drops)
        self._input_before: InputCounters | None = None
        self._report_timer = bus.create_timer(self.config.diagnostics_period_s, self.report)

    def on_configure(self, previous: State) -> None:
        """Load the adapter and pick its runtime."""
        self.session, self.identity = self._load()
        log.info("%s: %s on %s", self.name, self.identity[0], self.session.runtime.describe())

    def on_activate(self, previous: State) -> None:
        """Start encoding the newest data."""
        self._timer = self.bus.create_timer(1.0 / self.config.rate_hz, self.encode_newest)

    def on_deactivate(self, previous: State) -> None:
        """Stop encoding (the adapter stays loaded); a block being encoded is finished first."""
        if self._timer is not None:
            self._timer.cancel()
        with self._encoding:
            self._timer = None

    def on_cleanup(self, previous: State) -> None:
        """Release the runtime."""
        self.on_deactivate(previous)
        if self.session is not None:
            self.session.runtime.close()
            self.session = None

    def on_shutdown(self, previous: State) -> None:
        """Release everything."""
        self.on_cleanup(previous)

    def on_error(self, previous: State) -> None:
        """Drop what a failed transition left half loaded."""
        self.on_cleanup(previous)

    def _load(self) -> tuple[Any, tuple[str, str]]:
        from mm_ros.adapters.checkpoint import load_adapter
        from mm_ros.engines.selection import select_runtime
        from mm_ros.engines.session import AdapterSession
        from mm_ros.llm.backends.composed import default_model_dir, read_manifest

        c = self.config
        folder = Path(c.adapter_dir) if c.adapter_dir else None
        if folder is None:
            model = Path(c.model_dir) if c.model_dir else default_model_dir()
            adapters = read_manifest(model).adapters
            if self.modality not in adapters:
                raise ConfigError(
                    f"model {model} has no {self.modality} adapter (it has {sorted(adapters)})"
                )
            folder = model / adapters[self.modality]
        loaded = load_adapter(folder)
        if loaded.spec.modality.value != self.modality:
            raise ConfigError(
                f"{folder}: adapter encodes {loaded.spec.modality.value}, this node "
                f"{self.name} encodes {self.modality}"
            )
        from mm_ros.nodes.model_service import ModelServiceConfig

        engine = (
            ModelServiceConfig(
                runtimes=c.runtimes, engine_cache_dir=c.engine_cache_dir, device=c.device
            )
            .backend_config()
            .engine
        )
        assert engine is not None  # backend_config always sets it
        selection = select_runtime(loaded, engine)
        session = AdapterSession(loaded.spec, selection.runtime, "float32")
        return session, (loaded.spec.name, loaded.weights_sha256)

    def report(self) -> None:
        """Publish the input's health and the dropped input on /diagnostics."""
        now = self.inputs.counters()[self.modality]
        health = assess(
            now,
            self._input_before,
            self.config.diagnostics_period_s,
            self.bus.now_ns(),
            self.config.stale_after_s,
        )
        self._input_before = now
        topic = self.inputs.intakes[self.modality].topic
        entry = Entry(f"{self.bus.node_name}: {self.modality} ({topic})", topic, health)
        self._diagnostics.publish([entry, self._dropped.entry()])

    def close(self) -> None:
        """Stop reporting, then wind down as every managed node does."""
        self._report_timer.cancel()
        super().close()

    def encode_newest(self) -> None:
        """Encode the newest data if it is new; publish its tokens."""
        with self._encoding:
            if self.session is not None and self._timer is not None:  # still active
                self._encode_newest()

    def _encode_newest(self) -> None:
        spec = self.session.spec
        span_s = spec.audio.clip_s if spec.audio else spec.imu.window_s if spec.imu else 0.1
        sensor = {"image": Modality.IMAGE, "audio": Modality.AUDIO, "imu": Modality.IMU}
        snapshot = self.inputs.windows.snapshot(None, {sensor[self.modality]: int(span_s * NS)})
        found = self._block_source(self.modality, self.session, snapshot)
        if found is None or found[0] == self._last_key:
            return
        self._last_key = found[0]
        self._publisher.publish(self._make(**self.message(found[1]())))

    def message(self, block: Block) -> dict[str, Any]:
        """TokenEmbeddings fields of one encoded block."""
        shape, dtype, data = encode_tokens(block.tokens, self.config.dtype)
        out: dict[str, Any] = {
            "header": convert.header(block.stamp_ns, block.frame_id),
            "window_start": convert.header(block.start_ns, "")["stamp"],
            "modality": self.modality,
            "adapter_id": self.identity[0],
            "checkpoint_sha256": self.identity[1],
            "shape": shape,
            "dtype": dtype,
            "data": data,
        }
        if block.transform is not None and block.image is not None:
            out["source_width"] = block.image.width
            out["source_height"] = block.image.height
            out["input_to_source"] = list(block.transform.as_tuple())
        return out


class CameraAdapterNode(AdapterNode):
    """The image adapter as a node."""

    name = "camera_adapter"
    modality = "image"


class AudioAdapterNode(AdapterNode):
    """The audio adapter as a node."""

    name = "audio_adapter"
    modality = "audio"


class ImuAdapterNode(AdapterNode):
    """The IMU adapter as a node."""

    name = "imu_adapter"
    modality = "imu"


def camera_main(argv: list[str] | None = None) -> int:
    """Entry point of ``camera_adapter``."""
    return run_node(CameraAdapterNode, list(sys.argv[1:] if argv is None else argv))


def audio_main(argv: list[str] | None = None) -> int:
    """Entry point of ``audio_adapter``."""
    return run_node(AudioAdapterNode, list(sys.argv[1:] if argv is None else argv))


def imu_main(argv: list[str] | None = None) -> int:
    """Entry point of ``imu_adapter``."""
    return run_node(ImuAdapterNode, list(sys.argv[1:] if argv is None else argv))
