"""Tiny adapters built once per session in a temporary folder, with their ONNX exports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mm_ros.adapters.checkpoint import LoadedAdapter, load_adapter
from mm_ros.adapters.spec import AdapterSpec, EncoderFamily, Modality, ReducerKind
from mm_ros.adapters.tiny import make_tiny_adapter, tiny_spec
from mm_ros.engines.export import export_onnx

# Every adapter kind x every image reducer x every encoder family: the contract's rows.
SPECS: list[AdapterSpec] = [
    *(tiny_spec(Modality.IMAGE, reducer) for reducer in ReducerKind),
    tiny_spec(Modality.IMAGE, ReducerKind.NONE, EncoderFamily.CLIP),
    tiny_spec(Modality.IMAGE, ReducerKind.CONCAT4, EncoderFamily.SIGLIP),
    tiny_spec(Modality.VIDEO, ReducerKind.CONCAT4),
    tiny_spec(Modality.AUDIO),
    tiny_spec(Modality.AUDIO, family=EncoderFamily.WHISPER),
    tiny_spec(Modality.AUDIO, family=EncoderFamily.CLAP),
    tiny_spec(Modality.IMU),
]
SPEC_IDS = [spec.name for spec in SPECS]
EXPORTERS = {"dynamo": True, "legacy": False}


@dataclass
class TinyAdapters:
    """Lazily built adapter folders and ONNX files, shared by the whole session."""

    root: Path
    loaded: dict[str, LoadedAdapter] = field(default_factory=dict)
    onnx: dict[tuple[str, str], Path] = field(default_factory=dict)

    def adapter(self, spec: AdapterSpec) -> LoadedAdapter:
        if spec.name not in self.loaded:
            folder = make_tiny_adapter(self.root / spec.name, spec)
            self.loaded[spec.name] = load_adapter(folder)
        return self.loaded[spec.name]

    def onnx_path(self, spec: AdapterSpec, exporter: str) -> Path:
        key = (spec.name, exporter)
        if key not in self.onnx:
            adapter = self.adapter(spec)
            path = self.root / spec.name / f"model.{exporter}.onnx"
            export_onnx(adapter.module, spec.input_shape(), path, dynamo=EXPORTERS[exporter])
            self.onnx[key] = path
        return self.onnx[key]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyAdapters:
    return TinyAdapters(tmp_path_factory.mktemp("adapters"))
