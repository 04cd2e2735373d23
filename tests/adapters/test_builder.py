"""Offline builds with TensorRT's build step faked: export, key, cache, up to date, memory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mm_ros.adapters.spec import Modality
from mm_ros.adapters.tiny import make_tiny_adapter, tiny_spec
from mm_ros.core.errors import EngineError, RuntimeUnavailableError
from mm_ros.engines import builder, device, selection
from mm_ros.engines.builder import build_manifest
from mm_ros.engines.cache import EngineCache
from mm_ros.engines.device import GpuIdentity
from mm_ros.engines.manifest import load_manifest
from mm_ros.engines.runtimes import tensorrt
from mm_ros.engines.runtimes.base import RuntimeKind
from mm_ros.engines.selection import EngineConfig, select_runtime

if TYPE_CHECKING:
    from tests.adapters.conftest import TinyAdapters

ORIN = GpuIdentity("10.3.0", "Orin", "8.7")


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str, int]]:
    builds: list[tuple[Path, str, int]] = []

    def fake_build(
        onnx_path: Path, profile, precision: str, workspace_bytes: int, **_: object
    ) -> bytes:
        builds.append((onnx_path, precision, profile.max_batch))
        return b"engine:" + onnx_path.name.encode()

    monkeypatch.setattr(device, "gpu_identity", lambda index=0: ORIN)
    # TensorRT runs on CUDA device 0 whatever the adapter device resolved to on this machine
    monkeypatch.setattr(selection, "cuda_index", lambda _device: 0)
    monkeypatch.setattr(tensorrt, "build_engine", fake_build)
    monkeypatch.setattr(builder, "available_memory_bytes", lambda: 64 << 30)
    return builds


def write_manifest(root: Path) -> Path:
    make_tiny_adapter(root / "imu", tiny_spec(Modality.IMU))
    path = root / "manifest.yaml"
    path.write_text(
        "version: 1\nengines:\n"
        "  - {name: imu, adapter: imu, precision: fp32, batch: {min: 1, opt: 2, max: 4}}\n"
    )
    return path


def test_build_then_up_to_date(tmp_path: Path, fake_gpu: list[tuple[Path, str, int]]) -> None:
    manifest = load_manifest(write_manifest(tmp_path))
    (first,) = build_manifest(manifest, progress=False)
    assert first.status == "built"
    assert fake_gpu[0][1:] == ("fp32", 4)
    assert fake_gpu[0][0].parent == tmp_path / "cache" / "onnx"  # exported once, into the cache
    (entry,) = EngineCache(tmp_path / "cache").entries()
    assert entry.problem == ""
    assert entry.key is not None
    assert (entry.key.gpu_name, entry.key.shape_profile) == ("Orin", "1-2-4x50x6")
    (second,) = build_manifest(manifest, progress=False)
    assert second.status == "up to date"
    assert len(fake_gpu) == 1  # nothing rebuilt


def test_a_corrupt_engine_is_rebuilt(tmp_path: Path, fake_gpu: list[tuple[Path, str, int]]) -> None:
    manifest = load_manifest(write_manifest(tmp_path))
    (first,) = build_manifest(manifest, progress=False)
    first.path.write_bytes(b"trunc")
    (second,) = build_manifest(manifest, progress=False)
    assert second.status == "built"
    assert len(fake_gpu) == 2


def test_build_refuses_without_free_memory(
    tmp_path: Path, fake_gpu: list[tuple[Path, str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builder, "available_memory_bytes", lambda: 256 << 20)
    with pytest.raises(EngineError, match="building imu: needs 1536 MiB free, found 256"):
        build_manifest(load_manifest(write_manifest(tmp_path)), progress=False)
    assert fake_gpu == []


def test_launch_never_builds_unless_asked(
    tiny: TinyAdapters, tmp_path: Path, fake_gpu: list[tuple[Path, str, int]]
) -> None:
    adapter = tiny.adapter(tiny_spec(Modality.IMU))
    config = EngineConfig(engine_cache_dir=str(tmp_path), preference=(RuntimeKind.TENSORRT,))
    with pytest.raises(EngineError, match=r"no engine built for this key.*build_if_missing is off"):
        select_runtime(adapter, config)
    assert fake_gpu == []


def test_build_if_missing_builds_at_launch(
    tiny: TinyAdapters, tmp_path: Path, fake_gpu: list[tuple[Path, str, int]]
) -> None:
    adapter = tiny.adapter(tiny_spec(Modality.IMU))
    config = EngineConfig(
        engine_cache_dir=str(tmp_path),
        preference=(RuntimeKind.TENSORRT, RuntimeKind.TORCH),
        build_if_missing=True,
        precision="fp32",
    )
    selection = select_runtime(adapter, config)
    assert len(fake_gpu) == 1  # built once, stored in the cache
    assert EngineCache(tmp_path).entries()[0].problem == ""
    # this machine cannot deserialize the (fake) engine: a logged miss, then the next runtime
    assert selection.runtime.kind is RuntimeKind.TORCH
    assert "fresh build unusable" in selection.fallbacks[0].reason


def test_gpu_identity_names_everything_missing() -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(
        RuntimeUnavailableError, match=r"tensorrt not importable.*no CUDA GPU visible"
    ):
        device.gpu_identity()
