"""Adapter checkpoints: a folder with ``adapter.json`` and ``model.safetensors``; never pickle.

Pickled weights (``torch.save``, ``.bin``/``.pt``/``.ckpt``) can run arbitrary code when loaded,
so they are refused with an error that says how to convert them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mm_ros.adapters.spec import AdapterSpec, spec_from_json, spec_to_json
from mm_ros.core.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from torch import nn

ADAPTER_JSON = "adapter.json"
WEIGHTS = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# First bytes of a pickle stream (protocol 2+) and of a torch.save zip archive.
PICKLE_MAGICS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")
READ_CHUNK_BYTES = 1 << 20
SHOWN_KEYS = 5  # state-dict keys quoted in a mismatch error


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter ready to run: its spec, the torch module (eval mode) and where it came from."""

    spec: AdapterSpec
    module: nn.Module
    folder: Path
    weights_sha256: str  # carried in TokenEmbeddings.checkpoint_sha256


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def save_adapter(module: nn.Module, spec: AdapterSpec, folder: Path) -> Path:
    """Write ``adapter.json`` and ``model.safetensors`` into ``folder`` (created); return it."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    # one metadata key: safetensors writes a map in arbitrary order, and the file hash (the
    # adapter identity) must not change when the same weights are saved again
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
    text = json.dumps(spec_to_json(spec), indent=2, sort_keys=True)
    (folder / ADAPTER_JSON).write_text(text + "\n", encoding="utf-8")
    return folder


def read_spec(folder: Path) -> AdapterSpec:
    """Read and validate ``folder/adapter.json``."""
    if not folder.is_dir():
        raise CheckpointError(f"adapter folder {folder} does not exist or is not a folder")
    path = folder / ADAPTER_JSON
    if not path.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise CheckpointError(
            f"{path} not found (expected {ADAPTER_JSON} + {WEIGHTS}, found {found})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from err
    return spec_from_json(data, where=str(path))


def refuse_pickles(folder: Path) -> None:
    """Raise if the weights in ``folder`` are pickled (by name or by their first bytes)."""
    weights = folder / WEIGHTS
    if weights.is_file():
        with weights.open("rb") as stream:
            head = stream.read(4)
        if head.startswith(PICKLE_MAGICS):
            raise CheckpointError(
                f"{weights} is a pickle / torch.save archive, not safetensors; refusing to load "
                "it (pickles can run code). Convert: safetensors.torch.save_file(state_dict, path)"
            )
        return
    _refuse_pickle_files(folder, WEIGHTS, "safetensors.torch.save_file(state_dict, ...)")
    raise CheckpointError(f"{weights} not found")


def _refuse_pickle_files(folder: Path, instead_of: str, convert: str) -> None:
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{folder} has pickled weights {pickles} and no {instead_of}; refusing to load "
            f"pickles (they can run code). Convert them once, where you trust them: {convert}"
        )


def refuse_pickled_hf(folder: Path) -> None:
    """Raise if a Hugging Face model folder holds pickled weights and no safetensors.

    ``from_pretrained`` is called with ``use_safetensors=True`` too; this says why, and how to
    convert, before transformers' own error.
    """
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        _refuse_pickle_files(
            folder, "*.safetensors", "model.save_pretrained(folder, safe_serialization=True)"
        )


def load_adapter(folder: Path, device: str = "cpu") -> LoadedAdapter:
    """Load an adapter folder: validate the spec, build the module, load strict weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mm_ros.adapters.build import build_adapter

    spec = read_spec(folder)
    refuse_pickles(folder)
    weights = folder / WEIGHTS
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        size = weights.stat().st_size
        raise CheckpointError(
            f"{weights} ({size} bytes) is truncated or not a safetensors file: {err}"
        ) from err
    try:
        module = build_adapter(spec)
    except ConfigError as err:
        raise CheckpointError(f"{folder / ADAPTER_JSON}: {err}") from err
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match {spec.name!r} ({spec.modality.value}/"
            f"{spec.encoder.family.value}): missing {_some(missing)}, "
            f"unexpected {_some(unexpected)}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                f"{weights}: tensor {key} has shape {tuple(tensor.shape)}, the spec needs "
                f"{tuple(expected[key].shape)}"
            )
    module.load_state_dict(state, strict=True)
    module.to(device).eval()
    return LoadedAdapter(spec, module, folder, sha256_file(weights))


def _some(keys: list[str]) -> str:
    return str(keys[:SHOWN_KEYS]) + (
        f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    )
