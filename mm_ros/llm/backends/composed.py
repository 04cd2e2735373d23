"""The composed backend: any HF causal LM plus one adapter per modality (the AnyMAL recipe).

A composed model is a folder, the same for the shipped ``mm-tiny`` and a user's own model::

    <dir>/mm_model.json         what is where, box format, prompt settings (ModelJson)
    <dir>/llm/                  HF causal LM + tokenizer (save_pretrained)
    <dir>/adapters/<modality>/  adapter.json + model.safetensors (mm_ros.adapters.checkpoint)

``model_dir == ""`` means the embedded default: the trained ``mm-tiny`` inside the package when
it is there, else a random tiny model built once into a cache folder (and labelled as random).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import torch

import mm_ros
from mm_ros.adapters.checkpoint import load_adapter, refuse_pickled_hf, save_adapter
from mm_ros.core.boxes import DEFAULT_SCALE, BoxFormat, BoxScale
from mm_ros.core.errors import BackendError, ConfigError, MmRosError
from mm_ros.core.prompt import MODALITY_MARKERS, PromptConfig
from mm_ros.engines.selection import EngineConfig, Selection, select_runtime
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
from mm_ros.llm.tokens import ensure_marker_tokens

if TYPE_CHECKING:
    from torch import nn

    from mm_ros.adapters.spec import AdapterSpec

log = logging.getLogger(__name__)

MODEL_JSON = "mm_model.json"
FORMAT_VERSION = 1  # bump when a field changes meaning; readers refuse newer versions
LLM_DIR = "llm"
ADAPTERS_DIR = "adapters"
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Weight files up to this size are hashed whole; bigger ones (multi-GB LMs) by their header,
# size and sampled chunks, so loading a 7B model does not spend seconds on an id.
SHORT_HASH = 8  # hex characters of the model id
PACKAGE_MODEL = Path(__file__).resolve().parents[2] / "models" / "mm-tiny"


class ModelJson(TypedDict, total=False):
    """``mm_model.json``; ``prompt``, ``box_scale``, ``chat_template``, ``random_init`` optional."""

    format_version: int
    name: str
    backend: str
    llm: str
    adapters: dict[str, str]
    box_format: str
    box_scale: str
    prompt: dict[str, Any]
    chat_template: bool
    random_init: bool


@dataclass(frozen=True)
class ComposedManifest:
    """``mm_model.json``, validated; folders are relative to the model folder."""

    name: str
    llm: str
    adapters: dict[str, str]  # modality → adapter folder
    box_format: BoxFormat = BoxFormat.MINIGPT_V2
    box_scale: BoxScale | None = None  # None = the format's usual scale
    prompt: PromptConfig = field(default_factory=PromptConfig)
    chat_template: bool = False
    random_init: bool = False


# --- mm_model.json ---------------------------------------------------------------------------


def manifest_to_json(manifest: ComposedManifest) -> ModelJson:
    """Return the JSON-ready dict of ``manifest``."""
    prompt = dataclasses.asdict(manifest.prompt)
    prompt["modality_order"] = list(manifest.prompt.modality_order)
    prompt["tasks"] = list(manifest.prompt.tasks)
    data: ModelJson = {
        "format_version": FORMAT_VERSION,
        "name": manifest.name,
        "backend": "composed",
        "llm": manifest.llm,
        "adapters": dict(manifest.adapters),
        "box_format": manifest.box_format.value,
        "prompt": prompt,
        "chat_template": manifest.chat_template,
        "random_init": manifest.random_init,
    }
    if manifest.box_scale is not None:
        data["box_scale"] = manifest.box_scale.value
    return data


def read_manifest(folder: Path) -> ComposedManifest:
    """Read and validate ``folder/mm_model.json``; errors name the file and the field."""
    if not folder.is_dir():
        raise BackendError(f"model folder {folder} does not exist or is not a folder")
    path = folder / MODEL_JSON
    if not path.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise BackendError(
            f"{path} not found: a composed model folder needs {MODEL_JSON}, {LLM_DIR}/ and "
            f"{ADAPTERS_DIR}/ (found {found})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BackendError(f"{path} is not valid JSON: {err}") from err
    return manifest_from_json(data, str(path))


def manifest_from_json(data: object, where: str = MODEL_JSON) -> ComposedManifest:
    """Build a :class:`ComposedManifest` from parsed JSON, naming any missing or wrong field."""
    if not isinstance(data, dict):
        raise BackendError(f"{where}: expected an object, found {type(data).__name__}")
    known = set(ModelJson.__annotations__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise BackendError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    version = _field(data, where, "format_version", int)
    if version > FORMAT_VERSION:
        raise BackendError(
            f"{where}: format_version {version} is newer than this mm_ros reads ({FORMAT_VERSION})"
        )
    backend = _field(data, where, "backend", str)
    if backend != "composed":
        raise BackendError(f"{where}: backend: expected 'composed', found {backend!r}")
    adapters = _field(data, where, "adapters", dict)
    for modality, sub in adapters.items():
        if modality not in MODALITY_MARKERS:
            raise BackendError(
                f"{where}: adapters: unknown modality {modality!r}; known: "
                f"{sorted(MODALITY_MARKERS)}"
            )
        _relative(sub, where, f"adapters.{modality}")
    try:
        fmt = box_format(_field(data, where, "box_format", str, BoxFormat.MINIGPT_V2.value))
        scale_name = _field(data, where, "box_scale", str, "")
        scale = box_scale(scale_name) if scale_name else None
        prompt = _prompt(_field(data, where, "prompt", dict, {}), where)
    except ConfigError as err:
        raise BackendError(f"{where}: {err}") from err
    return ComposedManifest(
        name=_field(data, where, "name", str),
        llm=_relative(_field(data, where, "llm", str), where, "llm"),
        adapters=dict(adapters),
        box_format=fmt,
        box_scale=scale,
        prompt=prompt,
        chat_template=_field(data, where, "chat_template", bool, False),
        random_init=_field(data, where, "random_init", bool, False),
    )


_MISSING: Any = object()


def _field(data: dict[str, Any], where: str, name: str, kind: type, default: Any = _MISSING) -> Any:
    if name not in data:
        if default is _MISSING:
            raise BackendError(f"{where}: missing field {name!r} ({kind.__name__})")
        return default
    value = data[name]
    # bool is an int subclass: true is not a format_version
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BackendError(f"{where}: {name}: expected {kind.__name__}, found {value!r}")
    return value


def _relative(value: object, where: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BackendError(f"{where}: {name}: expected a folder name, found {value!r}")
    if Path(value).is_absolute() or ".." in Path(value).parts:
        raise BackendError(
            f"{where}: {name}: expected a path inside the model folder, found {value!r}"
        )
    return value


def _prompt(data: dict[str, Any], where: str) -> PromptConfig:
    fields = {f.name for f in dataclasses.fields(PromptConfig)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise BackendError(f"{where}: prompt: unknown field(s) {unknown}; known: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name in ("modality_order", "tasks"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BackendError(
                    f"{where}: prompt.{name}: expected a list of names, found {value!r}"
                )
            kwargs[name] = tuple(value)
        elif not isinstance(value, str):
            raise BackendError(f"{where}: prompt.{name}: expected str, found {value!r}")
        else:
            kwargs[name] = value
    try:
        return PromptConfig(**kwargs)
    except ConfigError as err:
        raise BackendError(f"{where}: prompt: {err}") from err


# --- save ------------------------------------------------------------------------------------


def save_composed(
    folder: Path,
    *,
    name: str,
    model: Any,
    tokenizer: Any,
    adapters: Mapping[str, tuple[nn.Module, AdapterSpec]],
    box_format: BoxFormat = BoxFormat.MINIGPT_V2,
    box_scale: BoxScale | None = None,
    prompt: PromptConfig | None = None,
    chat_template: bool = False,
    random_init: bool = False,
) -> Path:
    """Write a composed model folder (LM + tokenizer, adapters, mm_model.json); return it."""
    width = model.get_input_embeddings().embedding_dim
    for modality, (_, spec) in adapters.items():
        if spec.modality.value != modality:
            raise BackendError(
                f"adapter {spec.name!r} encodes {spec.modality.value}, saved under {modality!r}"
            )
        if spec.llm_width != width:
            raise BackendError(
                f"adapter {spec.name!r} has llm_width {spec.llm_width}, the language model's "
                f"hidden size is {width}"
            )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder / LLM_DIR))
    tokenizer.save_pretrained(str(folder / LLM_DIR))
    subs = {}
    for modality, (module, spec) in adapters.items():
        subs[modality] = f"{ADAPTERS_DIR}/{modality}"
        save_adapter(module, spec, folder / subs[modality])
    manifest = ComposedManifest(
        name=name,
        llm=LLM_DIR,
        adapters=subs,
        box_format=box_format,
        box_scale=box_scale,
        prompt=prompt or PromptConfig(),
        chat_template=chat_template,
        random_init=random_init,
    )
    text = json.dumps(manifest_to_json(manifest), indent=2)
    (folder / MODEL_JSON).write_text(text + "\n", encoding="utf-8")
    return folder


# --- load ------------------------------------------------------------------------------------


def load_composed(config: BackendConfig) -> LoadedBackend:
    """Load a composed model folder (``config.model_dir``; "" = the embedded default)."""
    folder = Path(config.model_dir) if config.model_dir else default_model_dir()
    manifest = read_manifest(folder)
    model, tokenizer = _load_lm(folder / manifest.llm, config)
    width = int(model.get_input_embeddings().embedding_dim)
    engine = config.engine or EngineConfig()
    sessions: dict[str, AdapterSession] = {}
    identities: dict[str, AdapterIdentity] = {}
    selections: dict[str, Selection] = {}
    try:
        for modality, sub in manifest.adapters.items():
            where = folder / sub
            try:
                loaded = load_adapter(where)
            except MmRosError as err:
                raise BackendError(f"{folder / MODEL_JSON}: adapters.{modality}: {err}") from err
            spec = loaded.spec
            if spec.modality.value != modality:
                raise BackendError(
                    f"{where}: adapter {spec.name!r} encodes {spec.modality.value}, but "
                    f"{MODEL_JSON} lists it under {modality!r}"
                )
            if spec.llm_width != width:
                raise BackendError(
                    f"{where}: adapter {spec.name!r} has llm_width {spec.llm_width}, the "
                    f"language model in {folder / manifest.llm} has hidden size {width}"
                )
            selections[modality] = select_runtime(loaded, engine)
            sessions[modality] = AdapterSession(spec, selections[modality].runtime, "float32")
            identities[modality] = AdapterIdentity(spec.name, loaded.weights_sha256)
    except BaseException:
        for selection in selections.values():
            selection.runtime.close()
        raise
    fmt = box_format(config.box_format) if config.box_format else manifest.box_format
    if config.box_scale:
        scale = box_scale(config.box_scale)
    elif config.box_format or manifest.box_scale is None:
        scale = DEFAULT_SCALE[fmt]  # a format chosen in the config brings its usual scale
    else:
        scale = manifest.box_scale
    digest = hashlib.sha256(weights_digest(folder / manifest.llm).encode())
    for modality in sorted(identities):
        digest.update(f"{modality}:{identities[modality].checkpoint_sha256}".encode())
    model_id = f"{manifest.name}@{digest.hexdigest()[:SHORT_HASH]}"
    if manifest.random_init:
        model_id += " (random weights)"
        log.warning("model %s has random weights: its answers mean nothing", model_id)
    return LoadedBackend(
        model_id=model_id,
        model=model,
        tokenizer=tokenizer,
        sessions=sessions,
        identities=identities,
        selections=selections,
        prompt=manifest.prompt,
        box_format=fmt,
        box_scale=scale,
        random_init=manifest.random_init,
        chat_template=manifest.chat_template,
    )


def _load_lm(folder: Path, config: BackendConfig) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto_model: Any = AutoModelForCausalLM  # its from_pretrained is typed for instances only

    if not folder.is_dir():
        raise BackendError(f"language-model folder {folder} does not exist (see {MODEL_JSON}.llm)")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device: expected a visible CUDA GPU for {config.device!r}, found none")
    refuse_pickled_hf(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = auto_model.from_pretrained(
            str(folder),
            local_files_only=True,
            dtype=TORCH_DTYPES[config.dtype],
            use_safetensors=True,
        )
    except (OSError, ValueError, KeyError) as err:
        raise BackendError(f"{folder} is not a loadable HF causal LM + tokenizer: {err}") from err
    ensure_marker_tokens(tokenizer, model)
    model.to(config.device).eval()
    return model, tokenizer


# --- the embedded default --------------------------------------------------------------------


def default_model_dir() -> Path:
    """Return the trained mm-tiny shipped in the package, else a random tiny one (built once)."""
    if (PACKAGE_MODEL / MODEL_JSON).is_file():
        return PACKAGE_MODEL
    target = cache_root() / f"random-default-{mm_ros.__version__}"
    if (target / MODEL_JSON).is_file():
        return target
    from mm_ros.llm.tiny import build_random_default

    log.warning(
        "no trained mm-tiny in %s: building a random tiny model in %s (answers mean nothing)",
        PACKAGE_MODEL,
        target,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place, so a concurrent loader never sees half.
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build_random_default(scratch)
        try:
            scratch.rename(target)
        except OSError:
            if not (target / MODEL_JSON).is_file():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
