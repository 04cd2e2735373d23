"""The hf-vlm backend: an off-the-shelf HF VLM split into its vision adapter and language model.

``model_dir`` is a folder written by ``save_pretrained`` (model + tokenizer/processor). The
family comes from ``config.json``'s model_type (``llava``, ``qwen2_vl``). The vision part is
written once as an ordinary adapter folder (:func:`mm_ros.adapters.vlm.split_hf_vlm`) into
``$MM_ROS_CACHE/hf-vlm/<name>-<key>``, keyed by the weights and the split settings, so it runs
on any runtime (torch, ONNX Runtime, TensorRT) and ``mm-ros engines export`` works on it. The
language side is the VLM itself with its vision part removed (its weights live in the adapter),
wrapped in :class:`VlmLanguageModel`.

An optional ``mm_vlm.json`` in ``model_dir`` overrides the defaults::

    {"image_px": 448, "resize_mode": "letterbox", "box_format": "qwen2-vl", "box_scale": ""}

Audio and IMU projectors on top of a VLM are not supported yet: only ``image`` has a session.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mm_ros.adapters.checkpoint import ADAPTER_JSON, load_adapter
from mm_ros.adapters.spec import FORMAT_VERSION, EncoderFamily
from mm_ros.adapters.vlm import load_vlm, vision_spec, vlm_family, write_vision_adapter
from mm_ros.core.boxes import BoxFormat
from mm_ros.core.errors import BackendError, ConfigError
from mm_ros.core.preprocessing import ResizeMode
from mm_ros.core.prompt import PromptConfig
from mm_ros.engines.selection import EngineConfig, select_runtime
from mm_ros.engines.session import AdapterSession
from mm_ros.llm.backends.base import (
    AdapterIdentity,
    BackendConfig,
    LoadedBackend,
    box_format,
    box_scale,
    cache_root,
    weights_digest,
)

log = logging.getLogger(__name__)

SETTINGS_JSON = "mm_vlm.json"
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# LLaVA-1.5 was taught RefCOCO boxes as [x1, y1, x2, y2] fractions of the image (Shikra's
# format); Qwen2-VL writes <|box_start|>(x1,y1),(x2,y2)<|box_end|> in 0-1000.
DEFAULT_BOXES = {
    EncoderFamily.LLAVA_VISION: BoxFormat.SHIKRA,
    EncoderFamily.QWEN2_VL_VISION: BoxFormat.QWEN2_VL,
}
# Text around the image tokens. LLaVA's prompt is "USER: <image>\n...": the tokens replace
# <image> and a newline follows. Qwen2-VL wraps them in its own vision markers.
IMAGE_MARKERS = {
    EncoderFamily.LLAVA_VISION: ("", "\n"),
    EncoderFamily.QWEN2_VL_VISION: ("<|vision_start|>", "<|vision_end|>"),
}
LLAVA_PROMPT = PromptConfig(user_open="USER:", user_close="ASSISTANT:")  # without a template
ROPE_DELTA = "mm_ros_rope_delta"  # attribute on the KV cache: M-RoPE offset of what follows
SHORT_HASH = 8


@dataclass(frozen=True)
class VlmSettings:
    """``mm_vlm.json``: how the vision part is split and how boxes are read."""

    image_px: int = 0  # square adapter input; 0 = the family default (mm_ros.adapters.vlm)
    resize_mode: ResizeMode | None = None  # None = the family default
    box_format: str = ""  # "" = the family default (DEFAULT_BOXES)
    box_scale: str = ""  # "" = the format's usual scale

    def __post_init__(self) -> None:
        if self.image_px < 0:
            raise ConfigError(f"image_px must be >= 0, found {self.image_px}")
        if self.box_format:
            box_format(self.box_format)
        if self.box_scale:
            box_scale(self.box_scale)


def read_settings(model_dir: Path) -> VlmSettings:
    """Read ``mm_vlm.json`` when present (defaults otherwise); errors name the file and field."""
    path = model_dir / SETTINGS_JSON
    if not path.is_file():
        return VlmSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BackendError(f"{path} is not valid JSON: {err}") from err
    known = {"image_px", "resize_mode", "box_format", "box_scale"}
    if not isinstance(data, dict) or set(data) - known:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise BackendError(f"{path}: expected an object with fields {sorted(known)}, found {found}")
    try:
        mode = data.get("resize_mode") or None
        return VlmSettings(
            image_px=int(data.get("image_px", 0)),
            resize_mode=ResizeMode(mode) if mode else None,
            box_format=str(data.get("box_format", "")),
            box_scale=str(data.get("box_scale", "")),
        )
    except (ValueError, TypeError) as err:
        raise BackendError(f"{path}: {err}") from err


class _VisionInAdapter(nn.Module):
    """Stands where the VLM's vision part was: pixels must go through the adapter session."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise BackendError(
            "this VLM's vision part runs as an mm_ros adapter (backend.sessions['image']); "
            "pass adapter tokens in inputs_embeds, not pixel values"
        )


class VlmLanguageModel(nn.Module):
    """The VLM's language side: ``inputs_embeds`` in, logits out.

    For Qwen2-VL it computes the multimodal rotary positions (M-RoPE) the VLM uses for image
    tokens, which the VLM itself can only compute from input ids: an image block is found as
    ``<|vision_start|>`` followed by the adapter's ``grid x grid`` tokens and
    ``<|vision_end|>`` (rows compared with the marker embeddings, as HF compares image-token
    rows). The offset this leaves for later tokens rides on the KV cache object (attribute
    ``mm_ros_rope_delta``), so decoding and a question prefilled after a cached prefix get the
    positions the VLM would give them.
    """

    def __init__(self, vlm: Any, grid: int = 0, markers: tuple[int, int] = (-1, -1)) -> None:
        super().__init__()
        self.vlm = vlm
        self.grid = grid  # merged tokens per side of one image; 0 = 1D positions (LLaVA)
        self.markers = markers  # token ids of the open / close vision markers

    @property
    def config(self) -> Any:
        """Return the VLM's config."""
        return self.vlm.config

    def get_input_embeddings(self) -> nn.Module:
        """Return the token-embedding table."""
        table: nn.Module = self.vlm.get_input_embeddings()
        return table

    def get_output_embeddings(self) -> nn.Module:
        """Return the LM head."""
        head: nn.Module = self.vlm.get_output_embeddings()
        return head

    def resize_token_embeddings(self, size: int) -> Any:
        """Grow the embedding table (and head) to ``size`` rows."""
        return self.vlm.resize_token_embeddings(size)

    @property
    def generation_config(self) -> Any:
        """Return the VLM's generation config (chat models list their end-of-turn ids there)."""
        return getattr(self.vlm, "generation_config", None)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        cache_position: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> Any:
        """Run the language model on (B, T, D) embeddings; returns the VLM's output (logits).

        ``position_ids`` (B, T) are text positions (as for any causal LM); for Qwen2-VL the
        image blocks' 3D positions and the offset after them are applied on top. (3, B, T)
        positions are passed through unchanged. ``cache_position`` is accepted and ignored
        (transformers 5 models take positions from ``position_ids`` and the cache length).
        """
        delta = None
        if self.grid and (position_ids is None or position_ids.ndim == 2):  # noqa: PLR2004
            position_ids, delta = self.mrope_positions(
                inputs_embeds, attention_mask, past_key_values, position_ids
            )
        out = self.vlm(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
            position_ids=position_ids,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        if delta is not None and out.past_key_values is not None:
            setattr(out.past_key_values, ROPE_DELTA, delta)
        return out

    def mrope_positions(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache: Any,
        text_positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(3, B, T) temporal/height/width positions of a chunk and the offset after it (B,).

        ``text_positions`` (B, T) are the plain 1D positions; None = from the attention mask
        (left padding) or the cache length.
        """
        batch, length = embeds.shape[0], embeds.shape[1]
        past = int(cache.get_seq_length()) if cache is not None else 0
        delta = getattr(cache, ROPE_DELTA, None)
        if delta is None:
            delta = torch.zeros(batch, dtype=torch.long)
        delta = delta.to(embeds.device)
        if text_positions is not None:
            text = text_positions.to(embeds.device).long().expand(batch, -1)
        elif attention_mask is not None:  # (B, past + T): left padding shifts text positions
            text = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past : past + length]
        else:
            text = torch.arange(past, past + length, device=embeds.device).expand(batch, -1)
        positions = (text + delta[:, None]).unsqueeze(0).repeat(3, 1, 1)  # (3, B, T)
        count = self.grid * self.grid
        if length < count + 2:  # no room for a whole block (decode steps)
            return positions, delta
        table: Any = self.get_input_embeddings()
        ids = torch.tensor(self.markers, device=table.weight.device)
        open_row, close_row = table(ids).to(embeds.device, embeds.dtype)
        is_open = (embeds == open_row).all(-1)  # (B, T)
        is_close = (embeds == close_row).all(-1)
        rows, cols = torch.meshgrid(
            torch.arange(self.grid, device=embeds.device),
            torch.arange(self.grid, device=embeds.device),
            indexing="ij",
        )
        new_delta = delta.clone()
        shift = self.grid - count  # image takes `grid` positions instead of `count`
        for b in range(batch):
            for start in torch.nonzero(is_open[b]).flatten().tolist():
                first, end = start + 1, start + 1 + count
                if end >= length or not bool(is_close[b, end]):
                    continue  # a marker without a block (e.g. written by the model): text
                base = positions[0, b, first]
                positions[0, b, first:end] = base
                positions[1, b, first:end] = base + rows.flatten()
                positions[2, b, first:end] = base + cols.flatten()
                positions[:, b, end:] += shift
                new_delta[b] += shift
        return positions, new_delta


def vision_folder(model_dir: Path, digest: str, dtype: str, settings: VlmSettings) -> Path:
    """Cache folder of the split vision adapter: keyed by weights, dtype and split settings."""
    mode = settings.resize_mode.value if settings.resize_mode else ""
    key = f"{digest}:{dtype}:{settings.image_px}:{mode}:{FORMAT_VERSION}"
    short = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "hf-vlm" / f"{model_dir.name}-{short}"


def _split_once(vlm: Any, model_dir: Path, target: Path, settings: VlmSettings) -> None:
    """Write the adapter folder into a temporary sibling, then rename it into place."""
    spec = vision_spec(vlm, model_dir, settings.image_px, settings.resize_mode)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write_vision_adapter(vlm, spec, staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / ADAPTER_JSON).is_file():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("split the vision part of %s into %s", model_dir, target)


def _drop_vision(vlm: Any, family: EncoderFamily) -> None:
    """Free the VLM's vision weights: the adapter holds them."""
    if family is EncoderFamily.LLAVA_VISION:
        vlm.model.vision_tower = _VisionInAdapter()
        vlm.model.multi_modal_projector = _VisionInAdapter()
    else:
        vlm.model.visual = _VisionInAdapter()


def _marker_ids(tokenizer: Any, markers: tuple[str, str], folder: Path) -> tuple[int, int]:
    vocab = tokenizer.get_vocab()
    missing = [m for m in markers if m and m not in vocab]
    if missing:
        raise BackendError(f"{folder}: the tokenizer lacks the VLM's image markers {missing}")
    return vocab[markers[0]], vocab[markers[1]]


def load_hf_vlm(config: BackendConfig) -> LoadedBackend:
    """Load the VLM in ``config.model_dir``: vision adapter session + language model."""
    from transformers import AutoTokenizer

    if not config.model_dir:
        raise BackendError("backend hf-vlm needs model_dir: a VLM folder saved by save_pretrained")
    folder = Path(config.model_dir)
    family = vlm_family(folder)
    settings = read_settings(folder)
    digest = weights_digest(folder)
    vlm = load_vlm(folder, TORCH_DTYPES[config.dtype])
    adapter_dir = vision_folder(folder, digest, config.dtype, settings)
    if not (adapter_dir / ADAPTER_JSON).is_file():
        _split_once(vlm, folder, adapter_dir, settings)
    adapter = load_adapter(adapter_dir)
    selection = select_runtime(adapter, config.engine or EngineConfig())
    session_dtype = "float16" if config.dtype == "float16" else "float32"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise BackendError(f"cannot load the tokenizer saved in {folder}: {err}") from err
    markers = IMAGE_MARKERS[family]
    _drop_vision(vlm, family)
    if family is EncoderFamily.QWEN2_VL_VISION:
        vision: Any = adapter.module
        merged = int(vision.grid) // int(vision.merge)  # merged tokens per side
        model = VlmLanguageModel(vlm, merged, _marker_ids(tokenizer, markers, folder))
    else:
        model = VlmLanguageModel(vlm)
    model.to(config.device).eval()
    fmt = box_format(config.box_format or settings.box_format or DEFAULT_BOXES[family].value)
    return LoadedBackend(
        model_id=f"{folder.name}@{digest[:SHORT_HASH]}",
        model=model,
        tokenizer=tokenizer,
        sessions={"image": AdapterSession(adapter.spec, selection.runtime, session_dtype)},
        identities={"image": AdapterIdentity(adapter.spec.name, adapter.weights_sha256)},
        selections={"image": selection},
        prompt=LLAVA_PROMPT if family is EncoderFamily.LLAVA_VISION else PromptConfig(),
        box_format=fmt,
        box_scale=box_scale(config.box_scale or settings.box_scale, fmt),
        chat_template=bool(getattr(tokenizer, "chat_template", None)),
        markers={"image": markers},
    )
