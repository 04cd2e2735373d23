"""TensorRT version switches, manifest, runtime selection with fallbacks, ONNX Runtime reporting."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pytest

from mm_ros.adapters.spec import Modality
from mm_ros.adapters.tiny import tiny_spec
from mm_ros.core.errors import (
    ConfigError,
    EngineError,
    ManifestError,
    RuntimeUnavailableError,
)
from mm_ros.engines.cache import ShapeProfile
from mm_ros.engines.device import available_memory_bytes, check_free_memory, cuda_index
from mm_ros.engines.manifest import load_manifest, parse_manifest
from mm_ros.engines.runtimes.base import RuntimeKind
from mm_ros.engines.runtimes.onnxruntime import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    OnnxRuntime,
    OrtOptions,
    provider_options,
)
from mm_ros.engines.runtimes.tensorrt import (
    BuildPlan,
    major_version,
    make_progress_monitor,
    network_flags,
    plan_build,
)
from mm_ros.engines.selection import EngineConfig, select_runtime

if TYPE_CHECKING:
    from mm_ros.adapters.checkpoint import LoadedAdapter
    from tests.adapters.conftest import TinyAdapters

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
NEEDS_TENSORRT = pytest.mark.skipif(
    not HAS_TENSORRT, reason="python module tensorrt not installed (needs an NVIDIA GPU machine)"
)


@pytest.mark.parametrize(
    ("version", "major"), [("10.3.0.30", 10), ("11.0.0", 11), ("10.15.1.post1", 10)]
)
def test_major_version(version: str, major: int) -> None:
    assert major_version(version) == major


def test_major_version_unreadable() -> None:
    with pytest.raises(EngineError, match="cannot read a TensorRT major version from 'dev'"):
        major_version("dev")


@pytest.mark.parametrize(
    ("major", "has_fp16_flag", "precision", "onnx_fp16", "plan"),
    [
        (10, True, "fp32", False, BuildPlan(True, False, "fp32")),
        (10, True, "fp16", True, BuildPlan(True, False, "fp16")),  # strongly typed from fp16 ONNX
        (10, True, "fp16", False, BuildPlan(False, True, "fp16")),  # weak typing, still in 10
        (11, False, "fp32", False, BuildPlan(True, False, "fp32")),
        (11, False, "fp16", True, BuildPlan(True, False, "fp16")),
    ],
)
def test_plan_build_per_version(
    major: int, has_fp16_flag: bool, precision: str, onnx_fp16: bool, plan: BuildPlan
) -> None:
    assert plan_build(major, has_fp16_flag, precision, onnx_fp16) == plan


@pytest.mark.parametrize(
    ("major", "has_fp16_flag", "precision", "onnx_fp16", "message"),
    [
        (11, False, "fp16", False, "TensorRT 11 has no BuilderFlag.FP16.*--fp16"),
        (10, True, "int8", False, "expected one of"),
        (8, True, "fp32", False, "too old"),
        (10, True, "fp32", True, "fp32 engine needs an fp32 ONNX"),
    ],
)
def test_plan_build_refusals(
    major: int, has_fp16_flag: bool, precision: str, onnx_fp16: bool, message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        plan_build(major, has_fp16_flag, precision, onnx_fp16)


def test_network_flags_use_strongly_typed_only_where_it_exists() -> None:
    with_flag = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))
    without = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace())
    typed, weak = BuildPlan(True, False, "fp16"), BuildPlan(False, True, "fp16")
    assert network_flags(with_flag, typed) == 1 << 1
    assert network_flags(with_flag, weak) == 0
    assert network_flags(without, typed) == 0


def test_progress_monitor_forwards_steps() -> None:
    class FakeMonitor:
        def __init__(self) -> None:
            pass

    steps: list[tuple[str, int, int]] = []
    monitor = make_progress_monitor(
        SimpleNamespace(IProgressMonitor=FakeMonitor), lambda *a: steps.append(a)
    )
    monitor.phase_start("Building", None, 3)
    assert monitor.step_complete("Building", 0) is True
    monitor.phase_finish("Building")
    assert steps == [("Building", 1, 3)]
    assert make_progress_monitor(SimpleNamespace(), lambda *a: None) is None  # old TensorRT


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_tensorrt_absent_is_unavailable_with_the_reason() -> None:
    from mm_ros.engines.runtimes.tensorrt import tensorrt_module

    with pytest.raises(RuntimeUnavailableError, match=r"tensorrt not importable.*JetPack"):
        tensorrt_module()


@NEEDS_TENSORRT
def test_tensorrt_build_and_run_a_tiny_engine(tiny: TinyAdapters, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("tensorrt is installed but no CUDA GPU is visible")
    from mm_ros.engines.runtimes.tensorrt import TensorRTRuntime, build_engine, deserialize

    spec = tiny_spec(Modality.IMU)
    onnx_path = tiny.onnx_path(spec, "dynamo")
    profile = ShapeProfile(1, 1, 4, spec.input_shape())
    blob = build_engine(onnx_path, profile, "fp32", 1 << 28, timing_cache=tmp_path / "t.cache")
    runtime = TensorRTRuntime(deserialize(blob), spec.input_shape())
    x = np.random.default_rng(0).standard_normal((2, *spec.input_shape())).astype(np.float32)
    reference = tiny.adapter(spec).module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(runtime.run(x), reference, atol=1e-3)


MANIFEST = """
version: 1
cache_dir: cache
engines:
  - name: camera
    adapter: adapters/camera
    precision: fp16
    batch: {min: 1, opt: 2, max: 4}
  - name: imu
    adapter: /abs/imu
    precision: fp32
"""


def test_manifest_parses_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(MANIFEST)
    manifest = load_manifest(path)
    assert manifest.cache_dir == tmp_path / "cache"
    camera, imu = manifest.entries
    assert camera.adapter == tmp_path / "adapters" / "camera"
    assert (camera.min_batch, camera.opt_batch, camera.max_batch) == (1, 2, 4)
    assert imu.adapter == Path("/abs/imu")
    assert (imu.precision, imu.max_batch, imu.workspace_mib, imu.opset) == ("fp32", 4, 1024, 18)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping at the top"),
        ({"version": 2, "engines": []}, "expected version: 1, found 2"),
        ({"version": 1, "engines": []}, "non-empty list under engines"),
        ({"version": 1, "engines": [{"name": "a"}]}, r"engines\[0\]: missing adapter"),
        (
            {"version": 1, "engines": [{"name": "a", "adapter": "x", "precision": "int8"}]},
            "precision",
        ),
        (
            {"version": 1, "engines": [{"name": "a", "adapter": "x", "batch": {"max": 0}}]},
            r"batch\.max",
        ),
        (
            {
                "version": 1,
                "engines": [{"name": "a", "adapter": "x", "batch": {"min": 4, "max": 2}}],
            },
            "min <= opt <= max",
        ),
        ({"version": 1, "engines": [{"name": "a", "adapter": "x", "colour": 1}]}, "unknown field"),
        (
            {
                "version": 1,
                "engines": [{"name": "a", "adapter": "x"}, {"name": "a", "adapter": "y"}],
            },
            "duplicate",
        ),
    ],
)
def test_manifest_errors_name_the_entry_and_field(data: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data, Path("/m/manifest.yaml"))


def test_manifest_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("engines: [")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(path)


def test_shipped_example_manifest_is_valid(repo: Path) -> None:
    manifest = load_manifest(repo / "engines" / "manifest.yaml")
    assert manifest.entries


def test_free_memory_check(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000000 kB\nMemAvailable:    2048 kB\n")
    assert available_memory_bytes(meminfo) == 2048 * 1024
    check_free_memory(1 << 20, 2 << 20, "building cam")
    with pytest.raises(EngineError, match="building cam: needs 1536 MiB free, found 2 MiB"):
        check_free_memory(1536 << 20, 2 << 20, "building cam")


def test_trt_ep_options_carry_the_caches() -> None:
    options = OrtOptions(trt_cache_dir="/c", trt_fp16=True)
    trt = provider_options(TRT_EP, options)
    assert trt["trt_engine_cache_enable"] is True
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == "/c"
    assert trt["trt_fp16_enable"] is True
    assert provider_options(CPU_EP, options) == {}
    assert "trt_engine_cache_enable" not in provider_options(TRT_EP, OrtOptions())
    profile = provider_options(TRT_EP, OrtOptions(max_batch=8), "input", (3, 32, 32))
    assert profile["trt_profile_min_shapes"] == "input:1x3x32x32"
    assert profile["trt_profile_max_shapes"] == "input:8x3x32x32"


def test_gpu_execution_providers_run_on_the_adapter_device() -> None:
    options = OrtOptions(device_id=1)
    assert provider_options(CUDA_EP, options) == {"device_id": 1}
    assert provider_options(TRT_EP, options)["device_id"] == 1
    assert provider_options(CUDA_EP, OrtOptions()) == {"device_id": 0}


@pytest.mark.parametrize(("text", "index"), [("cpu", None), ("cuda", 0), ("cuda:0", 0),
                                             ("cuda:3", 3)])  # fmt: skip
def test_cuda_index_of_a_device(text: str, index: int | None) -> None:
    assert cuda_index(text) == index


def test_cuda_index_refuses_unresolved_or_bad_devices() -> None:
    with pytest.raises(ConfigError, match="resolve 'auto' first"):
        cuda_index("auto")
    with pytest.raises(ConfigError, match=r"expected auto, cpu, cuda or cuda:N, found 'gpu1'"):
        cuda_index("gpu1")


def test_tensorrt_is_skipped_with_the_reason_when_the_adapter_device_is_the_cpu(
    tiny: TinyAdapters, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mm_ros.engines import device

    asked: list[int] = []

    def identity(index: int = 0) -> device.GpuIdentity:
        asked.append(index)
        return device.GpuIdentity("10.3.0", "Orin", "8.7")

    monkeypatch.setattr(device, "gpu_identity", identity)
    adapter = tiny.adapter(tiny_spec(Modality.IMU))
    config = EngineConfig(preference=(RuntimeKind.TENSORRT, RuntimeKind.TORCH), device="cpu")
    selection = select_runtime(adapter, config)
    assert selection.runtime.kind is RuntimeKind.TORCH
    assert "adapter device is 'cpu'; TensorRT engines run on cuda" in selection.fallbacks[0].reason
    assert asked == [0]


def test_onnxruntime_reports_the_providers_really_used(
    tiny: TinyAdapters, caplog: pytest.LogCaptureFixture
) -> None:
    spec = tiny_spec(Modality.IMU)
    with caplog.at_level(logging.WARNING):
        runtime = OnnxRuntime(tiny.onnx_path(spec, "legacy"), spec.input_shape(), OrtOptions())
    assert runtime.providers_used == [CPU_EP]  # this machine: no GPU
    assert set(runtime.dropped) == {TRT_EP, CUDA_EP}
    assert f"provider {TRT_EP} not used" in caplog.text
    assert CPU_EP in runtime.describe()


def test_onnxruntime_without_an_onnx_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailableError, match=r"no ONNX file at .*mm-ros engines export"):
        OnnxRuntime(tmp_path / "model.onnx", (6,), OrtOptions())


def test_selection_falls_back_loudly_and_records_why(
    tiny: TinyAdapters, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = tiny.adapter(tiny_spec(Modality.IMU))
    config = EngineConfig(onnx_path=str(tmp_path / "absent.onnx"), engine_cache_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        selection = select_runtime(adapter, config)
    assert selection.runtime.kind is RuntimeKind.TORCH
    kinds = [fb.kind for fb in selection.fallbacks]
    assert kinds == [RuntimeKind.TENSORRT, RuntimeKind.ONNXRUNTIME]
    assert "no ONNX file" in selection.fallbacks[1].reason
    assert "runtime tensorrt unavailable, falling back" in caplog.text
    diagnostics = selection.diagnostics()
    assert diagnostics["runtime"] == "torch"
    assert "skipped.tensorrt" in diagnostics
    assert not any(f.name == "onnx" for f in tmp_path.iterdir())  # nothing exported or built


def test_selection_uses_onnxruntime_when_its_onnx_exists(
    tiny: TinyAdapters, tmp_path: Path
) -> None:
    spec = tiny_spec(Modality.IMU)
    config = EngineConfig(
        onnx_path=str(tiny.onnx_path(spec, "dynamo")), engine_cache_dir=str(tmp_path)
    )
    selection = select_runtime(tiny.adapter(spec), config)
    assert selection.runtime.kind is RuntimeKind.ONNXRUNTIME
    assert "CPUExecutionProvider" in selection.runtime.describe()


def test_selection_with_nothing_available_names_every_reason(tiny: TinyAdapters) -> None:
    def unavailable(adapter: LoadedAdapter, config: EngineConfig) -> object:
        raise RuntimeUnavailableError("torch", "broken on purpose")

    adapter = tiny.adapter(tiny_spec(Modality.IMU))
    with pytest.raises(EngineError, match=r"no runtime available.*torch: broken on purpose"):
        select_runtime(
            adapter, EngineConfig(preference=(RuntimeKind.TORCH,)), {RuntimeKind.TORCH: unavailable}
        )


def test_selection_resolves_device_auto_before_building(
    tiny: TinyAdapters, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    seen: list[str] = []

    def record(adapter: LoadedAdapter, config: EngineConfig) -> object:
        seen.append(config.device)
        raise RuntimeUnavailableError("torch", "recorded only")

    adapter = tiny.adapter(tiny_spec(Modality.IMU))
    only_torch = EngineConfig(preference=(RuntimeKind.TORCH,))
    for visible in (False, True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda v=visible: v)
        with pytest.raises(EngineError):
            select_runtime(adapter, only_torch, {RuntimeKind.TORCH: record})
    assert seen == ["cpu", "cuda"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runtime = select_runtime(adapter, only_torch).runtime  # the real torch runtime
    assert runtime.describe().endswith("eager on cpu")


def test_engine_config_validation() -> None:
    with pytest.raises(ConfigError, match="preference list is empty"):
        EngineConfig(preference=())
    assert EngineConfig().build_if_missing is False  # never built silently at launch
