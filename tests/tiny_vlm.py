"""Tiny random HF vision-language models saved like real ones (model + tokenizer + image config).

LLaVA: CLIP vision tower (32 px, 8 px patches: 16 tokens) + Llama. Qwen2-VL: vision
transformer with 4 px patches and a 2x2 merger (16 px input: 4 tokens) + Qwen2-VL text model.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mm_ros.llm.tokens import word_level_tokenizer

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

WORDS = [
    "user",
    "assistant",
    "what",
    "is",
    "in",
    "the",
    "image",
    "a",
    "red",
    "cube",
    "blue",
    "ball",
    "left",
    "right",
    "of",
]
QWEN_SPECIAL = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_SPECIAL += ["<|im_start|>", "<|im_end|>"]
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MEAN = (0.5, 0.5, 0.5)  # not CLIP's, so a test sees the VLM's own statistics being used
STD = (0.25, 0.25, 0.25)
LLAVA_PX = 32
QWEN_PX = 16
QWEN_PATCH = 4
QWEN_MERGE = 2
QWEN_FRAMES = 2


def _text(vocab: int) -> dict[str, Any]:
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "vocab_size": vocab,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }


def _save_image_config(folder: Path) -> None:
    data = {"image_mean": list(MEAN), "image_std": list(STD)}
    (folder / "preprocessor_config.json").write_text(json.dumps(data), encoding="utf-8")


def make_tiny_llava(folder: Path, seed: int = 0, **overrides: Any) -> Any:
    """Save a tiny LlavaForConditionalGeneration + tokenizer into ``folder``; return the model.

    ``overrides`` go to LlavaConfig (e.g. vision_feature_layer, vision_feature_select_strategy).
    """
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    from transformers import LlavaForConditionalGeneration as Llava

    tokenizer = word_level_tokenizer(WORDS, special=["<image>"])
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=LLAVA_PX,
            patch_size=8,
        ),
        text_config=LlamaConfig(**_text(len(tokenizer))),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        **overrides,
    )
    torch.manual_seed(seed)
    model = Llava(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _save_image_config(folder)
    return model


def make_tiny_qwen2_vl(folder: Path, seed: int = 0, image_px: int = QWEN_PX) -> Any:
    """Save a tiny Qwen2VLForConditionalGeneration + chat tokenizer into ``folder``."""
    from transformers import Qwen2VLConfig
    from transformers import Qwen2VLForConditionalGeneration as Qwen2VL

    tokenizer = word_level_tokenizer(WORDS, special=QWEN_SPECIAL)
    tokenizer.chat_template = QWEN_TEMPLATE
    ids = tokenizer.convert_tokens_to_ids
    text = _text(len(tokenizer))
    # head_dim 16 → 8 rotary frequencies split over (temporal, height, width)
    text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3]}
    config = Qwen2VLConfig(
        vision_config={
            "depth": 2,
            "embed_dim": 16,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": QWEN_PATCH,
            "spatial_merge_size": QWEN_MERGE,
            "temporal_patch_size": QWEN_FRAMES,
        },
        text_config=text,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2VL(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _save_image_config(folder)
    (folder / "mm_vlm.json").write_text(json.dumps({"image_px": image_px}), encoding="utf-8")
    return model


def hf_patchify(image: NDArray[np.float32], patch: int, merge: int, frames: int) -> NDArray[Any]:
    """(3, H, W) → (H/p * W/p, 3*T*p*p): the numpy layout of HF's Qwen2-VL image processor."""
    c, h, w = image.shape
    gh, gw = h // patch, w // patch
    x = image.reshape(c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.transpose(1, 4, 2, 5, 0, 3, 6)  # (gh/m, gw/m, m, m, C, p, p)
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], frames, *x.shape[5:]))
    return x.reshape(gh * gw, c * frames * patch * patch)
