"""Vision parts of HF vision-language models, as ordinary mm_ros image adapters.

An off-the-shelf VLM is split in two: its vision part (encoder + projector, already trained to
write tokens in the language model's space) becomes an adapter folder that loads, exports and
compiles like any other; its language model is served by ``mm_ros.llm.backends.hf_vlm``.

* LLaVA (``LlavaForConditionalGeneration``): vision tower hidden state of
  ``vision_feature_layer`` (class token dropped for the ``default`` strategy) →
  ``multi_modal_projector``.
* Qwen2-VL (``Qwen2VLForConditionalGeneration``): the square image is cut into the flattened
  temporal-patch layout the HF processor writes for a still image (``temporal_patch_size``
  copies of each patch) for one fixed grid → vision transformer → 2x2 patch merger. The forward
  is written here with a batch axis and precomputed rotary positions, so it exports to ONNX; the
  weights are HF's own (state-dict names unchanged) and a test checks it against HF.

The adapter input is the usual ``(B, 3, S, S)`` float32, normalised with the VLM's mean/std.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mm_ros.adapters.checkpoint import refuse_pickled_hf, save_adapter
from mm_ros.adapters.spec import (
    AdapterSpec,
    EncoderFamily,
    EncoderSpec,
    ImagePreprocessing,
    Modality,
    ProjectorKind,
)
from mm_ros.core.errors import CheckpointError, ConfigError
from mm_ros.core.preprocessing import ResizeMode

log = logging.getLogger(__name__)

# The OpenAI CLIP statistics both families ship in their preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MODEL_TYPES = {  # config.json model_type → the family of its vision part
    "llava": EncoderFamily.LLAVA_VISION,
    "qwen2_vl": EncoderFamily.QWEN2_VL_VISION,
}
# Qwen2-VL takes any size (multiple of 28); an adapter needs one: 448 px = 16x16 merged tokens.
QWEN2_VL_IMAGE_PX = 448
# LLaVA's processor scales the short side and crops the centre; Qwen2-VL keeps the aspect ratio,
# which on a fixed square is a letterbox. Both map boxes back to source pixels exactly.
DEFAULT_RESIZE = {
    EncoderFamily.LLAVA_VISION: ResizeMode.CENTRE_CROP,
    EncoderFamily.QWEN2_VL_VISION: ResizeMode.LETTERBOX,
}
LLAVA_STRATEGIES = ("default", "full")  # default drops the class token


def _vision_config(config_dict: dict[str, Any]) -> Any:
    from transformers import CONFIG_MAPPING

    kind = config_dict.get("model_type", "")
    if kind not in CONFIG_MAPPING:
        raise ConfigError(f"vision_config: unknown HF model_type {kind!r}")
    return CONFIG_MAPPING[kind].from_dict(config_dict)


class LlavaProjector(nn.Module):
    """LLaVA's ``multi_modal_projector``: Linear → activation → Linear (same parameter names)."""

    def __init__(self, in_width: int, out_width: int, act: str, bias: bool) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.linear_1 = nn.Linear(in_width, out_width, bias=bias)
        self.act = ACT2FN[act]
        self.linear_2 = nn.Linear(out_width, out_width, bias=bias)

    def forward(self, features: Tensor) -> Tensor:
        """(B, L, in) → (B, L, out)."""
        return self.linear_2(self.act(self.linear_1(features)))  # type: ignore[no-any-return]


class LlavaVision(nn.Module):
    """``(B, 3, S, S)`` → ``(B, N, D_llm)``: vision tower layer(s) → projector."""

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__()
        from transformers import AutoModel

        auto: Any = AutoModel  # untyped classmethods
        cfg = spec.encoder.hf_config
        vision = _vision_config(cfg["vision_config"])
        self.vision_tower = auto.from_config(vision, attn_implementation="eager")
        layer = cfg["vision_feature_layer"]
        self.layers: tuple[int, ...] = (layer,) if isinstance(layer, int) else tuple(layer)
        strategy = cfg["vision_feature_select_strategy"]
        if strategy not in LLAVA_STRATEGIES:
            raise ConfigError(
                f"vision_feature_select_strategy: expected one of {LLAVA_STRATEGIES}, "
                f"found {strategy!r}"
            )
        self.skip = 1 if strategy == "default" else 0
        assert spec.image is not None  # image specs always have it (AdapterSpec checks)
        if vision.image_size != spec.image.size_px:
            raise ConfigError(
                f"llava vision tower expects {vision.image_size} px input, the adapter feeds "
                f"{spec.image.size_px} px"
            )
        grid = vision.image_size // vision.patch_size
        self.token_count = grid * grid + 1 - self.skip  # CLIP prepends a class token
        self.projector = LlavaProjector(
            vision.hidden_size * len(self.layers),
            spec.llm_width,
            cfg["projector_hidden_act"],
            bool(cfg["multimodal_projector_bias"]),
        )

    def forward(self, pixels: Tensor) -> Tensor:
        """(B, 3, S, S) → (B, N, D)."""
        states = self.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states
        chosen = [states[i][:, self.skip :] for i in self.layers]  # each (B, N, C)
        return self.projector(torch.cat(chosen, dim=-1))  # type: ignore[no-any-return]


class Qwen2VlVision(nn.Module):
    """``(B, 3, S, S)`` → ``(B, (S/(p*m))^2, D_llm)`` through Qwen2-VL's vision transformer."""

    def __init__(self, spec: AdapterSpec) -> None:
        super().__init__()
        from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
        from transformers.models.qwen2_vl.modeling_qwen2_vl import (
            Qwen2VisionTransformerPretrainedModel,
        )
        from transformers.vision_utils import get_vision_position_ids

        config: Any = Qwen2VLVisionConfig.from_dict(spec.encoder.hf_config["vision_config"])
        model_cls: Any = Qwen2VisionTransformerPretrainedModel
        self.visual = model_cls._from_config(config, attn_implementation="eager")
        assert spec.image is not None
        self.patch = int(config.patch_size)
        self.merge = int(config.spatial_merge_size)
        self.frames = int(config.temporal_patch_size)
        size = spec.image.size_px
        if size % (self.patch * self.merge):
            raise ConfigError(
                f"qwen2-vl input {size} px is not a multiple of patch_size x spatial_merge_size "
                f"= {self.patch * self.merge}"
            )
        if config.hidden_size != spec.llm_width:
            raise ConfigError(
                f"qwen2-vl merger writes {config.hidden_size}-wide tokens, the spec says "
                f"llm_width {spec.llm_width}"
            )
        self.grid = size // self.patch  # patches per side
        self.token_count = (self.grid // self.merge) ** 2
        # (L, 2) row/column of each patch in merge-block order: fixed by the grid, so it is
        # computed once here and the forward has no data-dependent shapes (exportable).
        grid_thw = torch.tensor([[1, self.grid, self.grid]])
        self.register_buffer(
            "positions", get_vision_position_ids(grid_thw, self.merge), persistent=False
        )

    def patchify(self, pixels: Tensor) -> Tensor:
        """(B, 3, S, S) → (B, L, 3*T*p*p), the HF image processor's layout for a still image."""
        b, c = pixels.shape[0], pixels.shape[1]
        g, m, p = self.grid, self.merge, self.patch
        x = pixels.reshape(b, c, g // m, m, p, g // m, m, p)
        x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # (B, g/m, g/m, m, m, C, p, p): merge-block order
        x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, self.frames, -1, -1)  # T equal frames
        return x.reshape(b, g * g, c * self.frames * p * p)

    def forward(self, pixels: Tensor) -> Tensor:
        """(B, 3, S, S) → (B, N, D)."""
        from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision

        visual: Any = self.visual
        b = pixels.shape[0]
        patches = self.patchify(pixels)  # (B, L, 3*T*p*p)
        length = patches.shape[1]
        x = visual.patch_embed(patches.reshape(b * length, -1)).reshape(b, length, -1)  # (B, L, E)
        cos, sin = visual.rotary_pos_emb(x, self.positions)  # (L, head_dim) each
        for block in visual.blocks:
            attn = block.attn
            qkv = attn.qkv(block.norm1(x)).reshape(b, length, 3, attn.num_heads, -1)
            q, k, v = qkv.permute(2, 0, 1, 3, 4).unbind(0)  # (B, L, H, hd) each
            q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, hd)
            # Eager attention as HF's: softmax in float32, one image per sequence (no mask).
            weights = torch.softmax((q @ k.transpose(-1, -2)) * attn.scaling, -1, torch.float32)
            mixed = (weights.to(v.dtype) @ v).transpose(1, 2).reshape(b, length, -1)
            x = x + attn.proj(mixed)
            x = x + block.mlp(block.norm2(x))
        merger = visual.merger
        merged = merger.ln_q(x).reshape(b, length // self.merge**2, -1)  # 2x2 blocks side by side
        return merger.mlp(merged)  # type: ignore[no-any-return]


def build_vlm_vision(spec: AdapterSpec) -> nn.Module:
    """Return the module of a VLM vision family (randomly initialised; weights load after)."""
    if spec.modality is not Modality.IMAGE:
        raise ConfigError(
            f"{spec.encoder.family.value} encodes images, the spec says {spec.modality.value}"
        )
    if spec.encoder.family is EncoderFamily.LLAVA_VISION:
        return LlavaVision(spec)
    if spec.encoder.family is EncoderFamily.QWEN2_VL_VISION:
        return Qwen2VlVision(spec)
    raise ConfigError(f"{spec.encoder.family.value} is not a VLM vision family")


# --- splitting a saved VLM --------------------------------------------------------------------


def vlm_family(model_dir: Path) -> EncoderFamily:
    """Read ``config.json``'s model_type and return the vision family it splits into."""
    path = model_dir / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read the VLM's config: {err}") from err
    kind = data.get("model_type", "") if isinstance(data, dict) else ""
    if kind not in MODEL_TYPES:
        raise CheckpointError(
            f"{path}: model_type {kind!r} is not a supported VLM (expected one of "
            f"{sorted(MODEL_TYPES)})"
        )
    return MODEL_TYPES[kind]


def load_vlm(model_dir: Path, dtype: torch.dtype = torch.float32) -> Any:
    """Load the whole VLM saved in ``model_dir`` (no download)."""
    from transformers import AutoModelForImageTextToText

    vlm_family(model_dir)  # a clear error before transformers' own
    refuse_pickled_hf(model_dir)
    try:
        model: Any = AutoModelForImageTextToText.from_pretrained(
            str(model_dir), local_files_only=True, dtype=dtype, use_safetensors=True
        )
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load a VLM from {model_dir}: {err}") from err
    return model.eval()


def _normalisation(model_dir: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of the VLM's image processor (preprocessor_config.json), else CLIP's."""
    path = model_dir / "preprocessor_config.json"
    if not path.is_file():
        log.warning("%s not found: normalising images with the OpenAI CLIP mean/std", path)
        return CLIP_MEAN, CLIP_STD
    data = json.loads(path.read_text(encoding="utf-8"))
    mean, std = data.get("image_mean", CLIP_MEAN), data.get("image_std", CLIP_STD)
    if len(mean) != 3 or len(std) != 3:  # noqa: PLR2004 - rgb
        raise CheckpointError(
            f"{path}: image_mean/image_std must have 3 values, found {mean} {std}"
        )
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def vision_spec(
    model: Any,
    model_dir: Path,
    image_px: int = 0,
    resize_mode: ResizeMode | None = None,
    name: str = "",
) -> AdapterSpec:
    """Return the adapter spec of ``model``'s vision part (``image_px`` 0 = the family default)."""
    family = vlm_family(model_dir)
    config = model.config
    llm_width = int(config.text_config.hidden_size)
    vision = config.vision_config
    if family is EncoderFamily.LLAVA_VISION:
        size = image_px or int(vision.image_size)
        hf_config = {
            "vision_config": vision.to_dict(),
            "vision_feature_layer": config.vision_feature_layer,
            "vision_feature_select_strategy": config.vision_feature_select_strategy,
            "projector_hidden_act": config.projector_hidden_act,
            "multimodal_projector_bias": bool(config.multimodal_projector_bias),
        }
        width, heads = int(vision.hidden_size), int(vision.num_attention_heads)
    else:
        size = image_px or QWEN2_VL_IMAGE_PX
        hf_config = {"vision_config": vision.to_dict()}
        width, heads = int(vision.embed_dim), int(vision.num_heads)
    mean, std = _normalisation(model_dir)
    image = ImagePreprocessing(
        size_px=size,
        resize_mode=resize_mode or DEFAULT_RESIZE[family],
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        antialias=True,  # the HF processors resize with PIL, which antialiases
    )
    return AdapterSpec(
        name=name or f"{model_dir.name}-vision",
        modality=Modality.IMAGE,
        encoder=EncoderSpec(
            family,
            width=width,
            depth=0,
            heads=heads,
            patch_px=int(vision.patch_size),
            hf_config=hf_config,
        ),
        llm_id=model_dir.name,
        llm_width=llm_width,
        token_count=vision_token_count(family, hf_config, size),
        projector=ProjectorKind.MLP2,  # informative: the VLM's own projector is inside
        image=image,
    )


def vision_token_count(family: EncoderFamily, hf_config: dict[str, Any], size_px: int) -> int:
    """Tokens per image, by arithmetic (building a 7B VLM's vision part to count costs seconds).

    The modules compute the same count; ``build_adapter`` checks that the two agree.
    """
    vision = hf_config["vision_config"]
    if family is EncoderFamily.LLAVA_VISION:
        grid = size_px // int(vision["patch_size"])
        full = hf_config["vision_feature_select_strategy"] == "full"
        return grid * grid + int(full)  # "full" keeps CLIP's class token
    return (size_px // (int(vision["patch_size"]) * int(vision["spatial_merge_size"]))) ** 2


def vision_state(model: Any, family: EncoderFamily) -> dict[str, Tensor]:
    """Return the state dict of the vision part under the adapter module's parameter names."""
    inner = model.model
    if family is EncoderFamily.LLAVA_VISION:
        parts = {"vision_tower": inner.vision_tower, "projector": inner.multi_modal_projector}
    else:
        parts = {"visual": inner.visual}
    return {
        f"{prefix}.{key}": tensor
        for prefix, part in parts.items()
        for key, tensor in part.state_dict().items()
    }


def write_vision_adapter(model: Any, spec: AdapterSpec, out: Path) -> Path:
    """Copy ``model``'s vision weights into the module ``spec`` describes; save it to ``out``."""
    module = build_vlm_vision(spec)
    state = {k: v.float() for k, v in vision_state(model, spec.encoder.family).items()}
    module.load_state_dict(state, strict=True)
    return save_adapter(module.eval(), spec, out)


def split_hf_vlm(
    model_dir: Path, out: Path, image_px: int = 0, resize_mode: ResizeMode | None = None
) -> Path:
    """Write the vision part of the VLM in ``model_dir`` as an adapter folder ``out``; return it.

    ``image_px`` is the side of the square input (LLaVA: its vision tower's size; Qwen2-VL:
    any multiple of patch x merge, default 448); 0 = the default.
    """
    model = load_vlm(model_dir)
    return write_vision_adapter(model, vision_spec(model, model_dir, image_px, resize_mode), out)
