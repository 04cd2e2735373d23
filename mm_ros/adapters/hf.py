"""Adapters whose encoder comes from a local Hugging Face folder (``local_files_only``).

The pretrained encoder's config is copied into ``adapter.json`` (``encoder.hf_config``) and its
weights into the adapter's ``model.safetensors``, so a saved adapter folder is self-contained.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_ros.adapters.build import build_adapter, derived_token_count
from mm_ros.adapters.checkpoint import refuse_pickled_hf
from mm_ros.adapters.spec import AdapterSpec, EncoderFamily
from mm_ros.core.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from torch import nn


def load_hf_encoder(family: EncoderFamily, folder: Path) -> nn.Module:
    """Load the pretrained vision tower / Whisper encoder in ``folder`` without any download."""
    from transformers import ClapAudioModel, CLIPVisionModel, SiglipVisionModel, WhisperModel

    classes: dict[EncoderFamily, Any] = {
        EncoderFamily.CLIP: CLIPVisionModel,
        EncoderFamily.SIGLIP: SiglipVisionModel,
        EncoderFamily.WHISPER: WhisperModel,
        EncoderFamily.CLAP: ClapAudioModel,
    }
    if family not in classes:
        raise ConfigError(f"family {family.value} is not a Hugging Face encoder ({list(classes)})")
    refuse_pickled_hf(folder)
    try:
        model = classes[family].from_pretrained(
            str(folder), local_files_only=True, attn_implementation="eager", use_safetensors=True
        )
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot load a {family.value} model from {folder}: {err}") from err
    encoder: nn.Module = model.encoder if family is EncoderFamily.WHISPER else model
    return encoder


def adapter_from_hf_folder(spec: AdapterSpec, folder: Path) -> tuple[AdapterSpec, nn.Module]:
    """Return ``spec`` completed from the HF folder and a module holding its pretrained weights.

    ``spec.encoder.family`` names the HF class; width, hf_config and (images) token_count are
    filled in; reducer, projector and preprocessing are kept from ``spec``.
    """
    pretrained = load_hf_encoder(spec.encoder.family, folder)
    config: Any = pretrained.config
    if spec.encoder.family is EncoderFamily.CLAP:
        width = int(config.patch_embeds_hidden_size * 2 ** (len(config.depths) - 1))
    else:
        width = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0))
    encoder = dataclasses.replace(spec.encoder, width=width, hf_config=config.to_dict())
    completed = dataclasses.replace(spec, encoder=encoder)
    if spec.image is not None:
        completed = dataclasses.replace(completed, token_count=derived_token_count(completed))
    module = build_adapter(completed)
    target: Any = module.encoder
    target.model.load_state_dict(pretrained.state_dict(), strict=True)
    return completed, module
