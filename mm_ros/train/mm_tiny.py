"""mm-tiny's architecture: three small adapters and a small Llama over a word vocabulary.

Sizes are chosen for a 2-core CPU: a training step of 32 questions takes about a second, and
the whole model is a few MB of safetensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mm_ros.adapters.spec import (
    AdapterSpec,
    AudioPreprocessing,
    EncoderFamily,
    EncoderSpec,
    ImagePreprocessing,
    ImuPreprocessing,
    Modality,
    ProjectorKind,
    ReducerKind,
    ReducerSpec,
)
from mm_ros.core.errors import ConfigError
from mm_ros.core.preprocessing import ResizeMode
from mm_ros.core.prompt import PromptConfig, Task, marker_tokens
from mm_ros.llm.tokens import WORD_PATTERN
from mm_ros.train import phrasing, tasks

MODEL_NAME = "mm-tiny"
# A short system text: the prompt is stored in mm_model.json, so the service lays out exactly
# this; the default's 33 words would be a quarter of every training sequence on a 2-core CPU.
SYSTEM_TEXT = "You are the perception of a robot."


def prompt_config() -> PromptConfig:
    """Return mm-tiny's prompt settings (written to mm_model.json), every task identifier."""
    return PromptConfig(system_text=SYSTEM_TEXT, tasks=tuple(t.value for t in Task))


@dataclass(frozen=True)
class TinyConfig:
    """Widths and depths of mm-tiny."""

    llm_width: int = 128
    llm_layers: int = 3
    llm_heads: int = 4
    llm_ffn: int = 384
    max_positions: int = 256  # prompt (~120 tokens) + answer (~30)
    # 96 px SQUASH input (percent boxes are percent of the source image), 8 px patches → 144
    # tokens, concat4 (over column strips, below) → 36 tokens of 4x the width.
    image_px: int = 96
    patch_px: int = 8
    image_width: int = 64
    image_depth: int = 2
    audio_width: int = 64
    audio_tokens: int = 8
    imu_width: int = 32
    imu_tokens: int = 4
    # concat4 over 4x1 column strips, not MiniGPT-v2's 1x4 row strips: a row strip spans a
    # third of the view, so objects side by side shared tokens, and boxes on them missed
    # (grounding 69.5 % with row strips, 78.0 % with column strips; model card)
    image_reducer: str = "concat4_columns"
    # Antialiased resizing of the camera frame (`ImagePreprocessing.antialias`); the shipped
    # model was trained without it (600 episodes with it: model card, "Tried after").
    image_antialias: bool = False

    def __post_init__(self) -> None:
        if self.llm_width % self.llm_heads:
            raise ConfigError(
                f"llm_width {self.llm_width} is not a multiple of llm_heads {self.llm_heads}"
            )
        if self.image_px % self.patch_px:
            raise ConfigError(f"image_px {self.image_px} is not a multiple of {self.patch_px}")
        kinds = [k.value for k in ReducerKind]
        if self.image_reducer not in kinds:
            raise ConfigError(
                f"image_reducer: expected one of {kinds}, found {self.image_reducer!r}"
            )


def adapter_specs(config: TinyConfig) -> dict[str, AdapterSpec]:
    """Image, audio and IMU adapter specs (modality name → spec)."""
    grid = config.image_px // config.patch_px
    image = AdapterSpec(
        name=f"{MODEL_NAME}-image",
        modality=Modality.IMAGE,
        encoder=EncoderSpec(
            EncoderFamily.VIT, config.image_width, config.image_depth, 4, config.patch_px
        ),
        llm_id=MODEL_NAME,
        llm_width=config.llm_width,
        token_count=grid * grid // 4,
        projector=ProjectorKind.MLP2,
        image=ImagePreprocessing(
            size_px=config.image_px,
            resize_mode=ResizeMode.SQUASH,
            antialias=config.image_antialias,
        ),
        reducer=ReducerSpec(kind=ReducerKind(config.image_reducer)),
    )
    audio = AdapterSpec(
        name=f"{MODEL_NAME}-audio",
        modality=Modality.AUDIO,
        encoder=EncoderSpec(EncoderFamily.AUDIO_CONV, config.audio_width, 1, 4),
        llm_id=MODEL_NAME,
        llm_width=config.llm_width,
        token_count=config.audio_tokens,
        projector=ProjectorKind.MLP2,
        # 1 s clip (the longest event is 1.5 s, the shortest gap 0.4 s), 20 ms hop: 49 frames
        audio=AudioPreprocessing(sample_rate_hz=16000, clip_s=1.0, n_fft=400, hop=320, n_mels=32),
    )
    imu = AdapterSpec(
        name=f"{MODEL_NAME}-imu",
        modality=Modality.IMU,
        encoder=EncoderSpec(EncoderFamily.IMU_CONV, config.imu_width, 1, 2),
        llm_id=MODEL_NAME,
        llm_width=config.llm_width,
        token_count=config.imu_tokens,
        projector=ProjectorKind.MLP2,
        # 1 s at 50 Hz: shorter than a motion segment (>= 1.2 s), two strides of the gait
        imu=ImuPreprocessing(rate_hz=50.0, window_s=1.0),
    )
    return {"image": image, "audio": audio, "imu": imu}


def vocabulary(prompt: PromptConfig) -> list[str]:
    """Every word of the system text, the training questions and the answers (lower-case).

    Words only the held-out templates use are left out on purpose: the tokenizer spells them
    in pieces (`word_piece_tokenizer`), as it would a real user's new words, and the service
    names them in the answer (``unknown_words``).
    """
    texts = [prompt.system_text, *phrasing.training_texts()]
    texts += list(tasks.SIDE_TEXT.values())
    texts += list(tasks.MOTION_TEXT.values()) + list(tasks.SOUND_TEXT.values())
    texts += list(tasks.OBJECT_NAMES)
    texts += ["i see nothing and the object on your", "the object", "i do not see the", "nothing."]
    texts += ["left centre right cube ball cone cylinder red green blue yellow purple orange"]
    pattern = re.compile(WORD_PATTERN)
    special = set(special_tokens(prompt)) | set(marker_tokens())
    words: list[str] = ["{", "}"]  # around boxes in [identify] questions
    for text in texts:
        for piece in pattern.findall(text.lower()):
            if piece not in special:
                words.append(piece)
    return list(dict.fromkeys(words))


def special_tokens(prompt: PromptConfig | None = None) -> list[str]:
    """[INST] [/INST], task identifiers, box tags and ``<0>``..``<100>``: one token each.

    Special tokens are matched whole before lower-casing, as in `mm_ros.llm.tiny`.
    """
    prompt = prompt or PromptConfig()
    return [
        prompt.user_open,
        prompt.user_close,
        *(t.identifier for t in Task),
        *tasks.BOX_TAGS,
        *tasks.PERCENT_TOKENS,
    ]


def build_tokenizer(prompt: PromptConfig) -> Any:
    """Return mm-tiny's tokenizer: a word each, unknown words in pieces (`word_piece_tokenizer`)."""
    from mm_ros.llm.tokens import word_piece_tokenizer

    return word_piece_tokenizer(vocabulary(prompt), special=special_tokens(prompt))


def build_llm(config: TinyConfig, vocab_size: int, tokenizer: Any) -> Any:
    """Return a randomly initialised LlamaForCausalLM of mm-tiny's size."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llm_config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.llm_width,
        intermediate_size=config.llm_ffn,
        num_hidden_layers=config.llm_layers,
        num_attention_heads=config.llm_heads,
        num_key_value_heads=config.llm_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,  # a third of the parameters would be the output table
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(llm_config)
    init_number_embeddings(model, tokenizer)
    return model


def init_number_embeddings(model: Any, tokenizer: Any, scale: float = 0.02) -> None:
    """Give ``<0>``..``<100>`` embeddings that vary smoothly with the number.

    Half of each row is a sinusoid of the value (periods from the whole range down to a few
    percent), half stays random: neighbouring numbers start close, and since the output layer
    is tied, a nearly right box number is also nearly as likely as the right one.
    """
    import math

    import torch

    table = model.get_input_embeddings().weight  # (V, D)
    width = int(table.shape[1])
    waves = width // 4  # sin + cos pairs on the first half of the row
    ids = tokenizer.convert_tokens_to_ids(list(tasks.PERCENT_TOKENS))
    values = torch.arange(len(ids), dtype=torch.float32) / 100.0  # (101,) 0..1
    periods = torch.logspace(0, math.log10(1 / 0.04), waves)  # 1 .. 25 cycles over the range
    phase = 2 * math.pi * values[:, None] * periods[None, :]  # (101, waves)
    smooth = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1) * scale * math.sqrt(2)
    with torch.no_grad():
        table[torch.tensor(ids), : 2 * waves] = smooth
