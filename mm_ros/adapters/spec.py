"""What an adapter is, as written in ``adapter.json``: frozen dataclasses + the on-disk TypedDict.

The JSON layout is exactly ``dataclasses.asdict(spec)`` (enums as their values), so the reader
and the writer cannot drift apart; :func:`spec_from_json` checks every field's presence and type
and names the missing or wrong one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypedDict, TypeVar, Union, cast

from mm_ros.core.errors import CheckpointError, ConfigError
from mm_ros.core.preprocessing import ResizeMode

FORMAT_VERSION = 1  # bump when a field changes meaning; readers refuse newer versions


class Modality(str, Enum):
    """Which sensor an adapter encodes."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    IMU = "imu"


class EncoderFamily(str, Enum):
    """Encoder implementations; HF families are built from ``hf_config`` (no download)."""

    VIT = "vit"  # mm_ros's small ViT (tiny models, tests)
    CLIP = "clip"  # transformers CLIPVisionModel
    SIGLIP = "siglip"  # transformers SiglipVisionModel
    AUDIO_CONV = "audio_conv"  # log-mel → conv stem → transformer blocks
    WHISPER = "whisper"  # transformers WhisperEncoder on the same log-mel front end
    CLAP = "clap"  # transformers ClapAudioModel (HTSAT) on the same log-mel front end
    IMU_CONV = "imu_conv"  # 1D conv stack over the resampled window
    # Vision parts split off an HF vision-language model (mm_ros.adapters.vlm): encoder and
    # projector in one, tokens already in the VLM's language-model space.
    LLAVA_VISION = "llava_vision"  # LLaVA: vision tower layer → multi_modal_projector
    QWEN2_VL_VISION = "qwen2_vl_vision"  # Qwen2-VL: vision transformer + 2x2 patch merger


class ReducerKind(str, Enum):
    """Image token reducers from the seed papers (REFERENCE.md section 4)."""

    NONE = "none"
    CONCAT4 = "concat4"  # MiniGPT-v2: 1x4 raster strips concatenated along channels, 4x fewer
    # concat4 over 4x1 column strips (four vertically adjacent patches): 4x fewer as well, but
    # objects side by side (the usual scene on a floor) no longer share a token
    CONCAT4_COLUMNS = "concat4_columns"
    PATCH_MINING = "patch_mining"  # Mini-Gemini: low-res queries over their high-res region
    DYNAMIC = "dynamic"  # LaVIT-style: keep the top-scored patches, merge the rest into them


class ProjectorKind(str, Enum):
    """Encoder width → LLM embedding width."""

    LINEAR = "linear"
    MLP2 = "mlp2"  # Linear-GELU-Linear, as LLaVA-1.5


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMU_AXES = 6  # ax, ay, az (m/s^2), gx, gy, gz (rad/s)


@dataclass(frozen=True)
class EncoderSpec:
    """Encoder architecture; for HF families only ``hf_config`` matters (width is checked)."""

    family: EncoderFamily
    width: int  # channels of the encoder's output tokens
    depth: int = 2  # transformer blocks (own families)
    heads: int = 2
    patch_px: int = 16  # image families: patch side in pixels of the encoder's input
    hf_config: dict[str, Any] = field(default_factory=dict)  # config.to_dict() of HF families

    def __post_init__(self) -> None:
        if self.width < 1 or self.depth < 0 or self.heads < 1 or self.patch_px < 1:
            raise ConfigError(f"encoder dims must be positive, found {self}")
        if self.width % self.heads:
            raise ConfigError(f"encoder width {self.width} is not a multiple of heads {self.heads}")


@dataclass(frozen=True)
class ImagePreprocessing:
    """How a camera frame becomes the (3, S, S) model input."""

    size_px: int  # side of the square model input (the high-res stream for patch_mining)
    resize_mode: ResizeMode = ResizeMode.LETTERBOX  # keeps geometry, so boxes map back exactly
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # Resize with antialiasing (PIL's bilinear, what HF image processors give their encoders) or
    # by sampling (2 taps an axis). A model is served with the resize it was trained with, so
    # the field is part of the spec; files written before it existed sampled (False).
    antialias: bool = False


@dataclass(frozen=True)
class AudioPreprocessing:
    """Log-mel front end constants (it runs inside the exported model)."""

    sample_rate_hz: int = 16000
    clip_s: float = 1.0  # newest clip_s of audio is encoded; shorter windows are zero-padded
    n_fft: int = 400  # 25 ms at 16 kHz, as Whisper
    hop: int = 160  # 10 ms
    n_mels: int = 80

    @property
    def clip_samples(self) -> int:
        """Samples in one clip."""
        return round(self.sample_rate_hz * self.clip_s)

    @property
    def frames(self) -> int:
        """Log-mel frames per clip (no centring)."""
        return 1 + (self.clip_samples - self.n_fft) // self.hop

    def __post_init__(self) -> None:
        if self.clip_samples < self.n_fft:
            raise ConfigError(
                f"audio clip of {self.clip_samples} samples is shorter than n_fft {self.n_fft}"
            )


@dataclass(frozen=True)
class ImuPreprocessing:
    """Resampling and normalisation of a 6-axis IMU window."""

    rate_hz: float = 100.0
    window_s: float = 2.0
    mean: tuple[float, ...] = (0.0, 0.0, 9.81, 0.0, 0.0, 0.0)  # gravity on z at rest
    std: tuple[float, ...] = (2.0, 2.0, 2.0, 1.0, 1.0, 1.0)  # m/s^2, rad/s of ordinary motion

    @property
    def rows(self) -> int:
        """Samples in the resampled window."""
        return round(self.rate_hz * self.window_s)

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ConfigError(f"imu mean/std lengths differ or are empty: {self.mean} {self.std}")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"imu std must be > 0, found {self.std}")
        if self.rows < 1:
            raise ConfigError(f"imu window {self.window_s} s at {self.rate_hz} Hz has no rows")


@dataclass(frozen=True)
class ReducerSpec:
    """Token reducer setting; only the fields of the chosen kind are used."""

    kind: ReducerKind = ReducerKind.NONE
    hires_factor: int = 2  # patch_mining: high-res side / low-res side (r x r cells per token)
    keep_ratio: float = 0.5  # dynamic: fraction of patches kept before clamping
    min_tokens: int = 1  # dynamic: bounds on the kept count
    max_tokens: int = 4096

    def __post_init__(self) -> None:
        if self.hires_factor < 1:
            raise ConfigError(f"hires_factor must be >= 1, found {self.hires_factor}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ConfigError(f"keep_ratio must be in (0, 1], found {self.keep_ratio}")
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ConfigError(f"need 1 <= min_tokens <= max_tokens, found {self}")


@dataclass(frozen=True)
class AdapterSpec:
    """Everything needed to rebuild an adapter module and prepare its input."""

    name: str  # adapter id, carried in TokenEmbeddings.adapter_id
    modality: Modality
    encoder: EncoderSpec
    llm_id: str  # the language model whose embedding space the tokens live in
    llm_width: int  # its embedding width (d_model)
    token_count: int  # tokens per window (image: derived, checked; others: a setting)
    projector: ProjectorKind = ProjectorKind.MLP2
    image: ImagePreprocessing | None = None  # image and video
    audio: AudioPreprocessing | None = None
    imu: ImuPreprocessing | None = None
    reducer: ReducerSpec = ReducerSpec()
    video_frames: int = 0  # video: K frames per clip
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        needs = {
            Modality.IMAGE: self.image,
            Modality.VIDEO: self.image,
            Modality.AUDIO: self.audio,
            Modality.IMU: self.imu,
        }[self.modality]
        if needs is None:
            raise ConfigError(
                f"adapter {self.name!r}: modality {self.modality.value} needs its "
                "preprocessing section (image / audio / imu)"
            )
        if self.llm_width < 1 or self.token_count < 1:
            raise ConfigError(f"adapter {self.name!r}: llm_width and token_count must be >= 1")
        if self.modality is Modality.VIDEO and self.video_frames < 1:
            raise ConfigError(f"adapter {self.name!r}: video needs video_frames >= 1")
        if self.format_version > FORMAT_VERSION:
            raise ConfigError(
                f"adapter {self.name!r}: format_version {self.format_version} is "
                f"newer than this mm_ros reads ({FORMAT_VERSION})"
            )

    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input without the batch axis."""
        if self.modality in (Modality.IMAGE, Modality.VIDEO):
            assert self.image is not None  # checked in __post_init__
            frame = (3, self.image.size_px, self.image.size_px)
            return (self.video_frames, *frame) if self.modality is Modality.VIDEO else frame
        if self.modality is Modality.AUDIO:
            assert self.audio is not None
            return (self.audio.clip_samples,)
        assert self.imu is not None
        return (self.imu.rows, len(self.imu.mean))


# --- the on-disk shape (mirrors asdict(AdapterSpec)) ---------------------------------------


class EncoderJson(TypedDict):
    """``adapter.json`` → ``encoder``."""

    family: str
    width: int
    depth: int
    heads: int
    patch_px: int
    hf_config: dict[str, Any]


class ReducerJson(TypedDict):
    """``adapter.json`` → ``reducer``."""

    kind: str
    hires_factor: int
    keep_ratio: float
    min_tokens: int
    max_tokens: int


class AdapterJson(TypedDict):
    """``adapter.json``; preprocessing sections are null for other modalities."""

    name: str
    modality: str
    encoder: EncoderJson
    llm_id: str
    llm_width: int
    token_count: int
    projector: str
    image: dict[str, Any] | None
    audio: dict[str, Any] | None
    imu: dict[str, Any] | None
    reducer: ReducerJson
    video_frames: int
    format_version: int


def spec_to_json(spec: AdapterSpec) -> AdapterJson:
    """Return the JSON-ready dict of ``spec`` (enums as values, tuples as lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return cast("AdapterJson", plain(dataclasses.asdict(spec)))


T = TypeVar("T")


def spec_from_json(data: object, where: str = "adapter.json") -> AdapterSpec:
    """Build an :class:`AdapterSpec` from parsed JSON, naming any missing or mistyped field."""
    return _build(AdapterSpec, data, where)


def _build(cls: type[T], data: object, where: str) -> T:
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: expected an object, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        path = f"{where}.{f.name}"
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CheckpointError(f"{where}: missing field {f.name!r} ({hints[f.name]})")
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name], path)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise CheckpointError(f"{where}: unknown field(s) {unknown}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from err


def _convert(hint: Any, value: object, path: str) -> Any:  # noqa: PLR0911 - one branch per type
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(inner, value, path)
    if dataclasses.is_dataclass(hint):
        return _build(cast("type[Any]", hint), value, path)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            known = [m.value for m in hint]
            raise CheckpointError(f"{path}: expected one of {known}, found {value!r}") from None
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
            raise CheckpointError(f"{path}: expected a list of numbers, found {value!r}")
        return tuple(float(v) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: expected an object, found {type(value).__name__}")
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise CheckpointError(f"{path}: expected {getattr(hint, '__name__', hint)}, found {value!r}")
