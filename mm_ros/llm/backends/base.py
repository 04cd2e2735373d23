"""What every backend hands the service: a causal LM, its tokenizer and one adapter per modality.

A backend is a loader function ``load(config) -> LoadedBackend`` registered in
:data:`LOADERS` by name (``composed``, ``hf-vlm``). The service never asks which backend it has:
text goes through ``tokenizer`` and ``embed_text``; modality blocks come from ``sessions``;
boxes are parsed with ``box_format`` / ``box_scale``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mm_ros.core.boxes import DEFAULT_SCALE, BoxFormat, BoxScale
from mm_ros.core.errors import BackendError, ConfigError
from mm_ros.core.prompt import MODALITY_MARKERS, PromptConfig
from mm_ros.engines.device import check_device, resolve_device

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch

    from mm_ros.engines.selection import EngineConfig, Selection
    from mm_ros.engines.session import AdapterSession

log = logging.getLogger(__name__)

BACKENDS = ("composed", "hf-vlm")
DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class BackendConfig:
    """Which model to load and how to run it."""

    kind: str = "composed"  # composed | hf-vlm
    model_dir: str = ""  # folder with the model; "" = the embedded default (mm-tiny)
    device: str = "auto"  # language model: auto (cuda when visible) | cpu | cuda | cuda:N
    dtype: str = "float32"  # language-model weights; float16 halves GPU memory
    box_format: str = ""  # "" = the model folder's setting (mm_model.json), else BoxFormat value
    box_scale: str = ""  # "" = the format's usual scale (REFERENCE.md section 4)
    engine: EngineConfig | None = None  # adapter runtimes; None = EngineConfig() defaults

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ConfigError(f"backend: expected one of {BACKENDS}, found {self.kind!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype: expected one of {DTYPES}, found {self.dtype!r}")
        check_device(self.device)
        if self.box_format:
            box_format(self.box_format)
        if self.box_scale:
            box_scale(self.box_scale)


def box_format(name: str) -> BoxFormat:
    """Return the BoxFormat called ``name`` or raise naming the known ones."""
    try:
        return BoxFormat(name)
    except ValueError as err:
        known = ", ".join(f.value for f in BoxFormat)
        raise ConfigError(f"box_format: expected one of {known}, found {name!r}") from err


def box_scale(name: str, fmt: BoxFormat | None = None) -> BoxScale:
    """Return the BoxScale called ``name`` ("" = the usual scale of ``fmt``)."""
    if not name and fmt is not None:
        return DEFAULT_SCALE[fmt]
    try:
        return BoxScale(name)
    except ValueError as err:
        known = ", ".join(s.value for s in BoxScale)
        raise ConfigError(f"box_scale: expected one of {known}, found {name!r}") from err


@dataclass(frozen=True)
class AdapterIdentity:
    """Who made a modality's tokens; embeddings from anyone else are refused."""

    adapter_id: str  # adapter.json name
    checkpoint_sha256: str  # hex SHA-256 of its model.safetensors


@dataclass
class LoadedBackend:
    """A language model ready to answer, with its adapters (all in eval mode)."""

    model_id: str  # e.g. "mm-tiny@3f2a9c1e" (name + short hash of the weights)
    model: Any  # transformers causal LM: forward(inputs_embeds=, attention_mask=, ...)
    tokenizer: Any  # transformers tokenizer; the marker tokens of core.prompt are known to it
    sessions: dict[str, AdapterSession]  # modality ("image", "audio", "imu", "video") → session
    identities: dict[str, AdapterIdentity]  # same keys as ``sessions``
    selections: dict[str, Selection]  # same keys: the runtime in use and the fallbacks taken
    prompt: PromptConfig = field(default_factory=PromptConfig)
    box_format: BoxFormat = BoxFormat.MINIGPT_V2
    box_scale: BoxScale = BoxScale.PERCENT
    random_init: bool = False  # weights are random (no trained model given): say so everywhere
    chat_template: bool = False  # wrap the user turn with tokenizer.apply_chat_template
    # modality → (open, close) marker strings around its tokens; hf-vlm backends use the VLM's
    # own (e.g. Qwen2-VL's <|vision_start|> <|vision_end|>), composed ones core.prompt's.
    markers: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(MODALITY_MARKERS))

    @property
    def device(self) -> torch.device:
        """Device of the language model's parameters."""
        device: torch.device = next(self.model.parameters()).device
        return device

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 token ids → (B, T, D) rows of the model's input-embedding table."""
        table = self.model.get_input_embeddings()
        out: torch.Tensor = table(ids.to(self.device))
        return out

    def close(self) -> None:
        """Release adapter runtimes (engines, ONNX sessions)."""
        for selection in self.selections.values():
            selection.runtime.close()


LOADERS = {  # backend name → "module:function", imported only when chosen
    "composed": "mm_ros.llm.backends.composed:load_composed",
    "hf-vlm": "mm_ros.llm.backends.hf_vlm:load_hf_vlm",
}


def load_backend(config: BackendConfig) -> LoadedBackend:
    """Load the backend ``config.kind`` names; ``device`` auto is resolved here for the LM."""
    device = resolve_device(config.device)
    if device != config.device:
        log.info("device auto: language model on %s", device)
        config = dataclasses.replace(config, device=device)
    module_name, _, function = LOADERS[config.kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendError(
            f"backend {config.kind!r} needs the model extras (pip install 'mm-ros[models]'): {err}"
        ) from err
    loader: Callable[[BackendConfig], LoadedBackend] = getattr(module, function)
    return loader(config)


FULL_HASH_BYTES = 64 << 20  # weight files up to this size are hashed whole
SAMPLE_BYTES = 1 << 20  # larger ones: their size and 16 sampled chunks (a 7B model in ms)


def weights_digest(folder: Path) -> str:
    """Hex SHA-256 over a model folder's weight files (names, sizes, contents or samples)."""
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise BackendError(f"{folder}: no *.safetensors (or *.bin) weights found")
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as stream:
            if size <= FULL_HASH_BYTES:
                digest.update(stream.read())
                continue
            for offset in range(0, size, size // 16):
                stream.seek(offset)
                digest.update(stream.read(SAMPLE_BYTES))
    return digest.hexdigest()


def cache_root() -> Path:
    """Return ``$MM_ROS_CACHE`` or ``~/.cache/mm_ros``: where built artefacts live."""
    from pathlib import Path

    env = os.environ.get("MM_ROS_CACHE", "")
    return Path(env) if env else Path.home() / ".cache" / "mm_ros"
