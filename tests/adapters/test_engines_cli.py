"""``mm-ros engines``: the acceptance commands and their exit codes."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from mm_ros.adapters.spec import Modality, ReducerKind
from mm_ros.adapters.tiny import make_tiny_adapter, tiny_spec
from mm_ros.cli.main import main
from mm_ros.engines.cache import EngineCache, EngineKey

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("flags", "name", "limit"),
    [
        ([], "model.onnx", 1e-4),
        (["--fp16"], "model.fp16.onnx", 5e-2),
        (["--exporter", "legacy"], "model.onnx", 1e-4),
    ],
)
def test_export_writes_onnx_and_prints_parity(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], name: str, limit: float
) -> None:
    folder = make_tiny_adapter(tmp_path / "img", tiny_spec(Modality.IMAGE, ReducerKind.CONCAT4))
    code, out, err = run_cli(capsys, "engines", "export", str(folder), *flags)
    assert (code, err) == (0, "")
    assert (folder / name).is_file()
    match = re.search(r"max abs error (\S+), cosine (\S+) — ok", out)
    assert match, out
    assert float(match.group(1)) <= limit
    assert float(match.group(2)) > 0.999


def test_export_of_a_broken_folder_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = make_tiny_adapter(tmp_path / "imu", tiny_spec(Modality.IMU))
    (folder / "model.safetensors").write_bytes(b"\x80\x04garbage")
    code, out, err = run_cli(capsys, "engines", "export", str(folder))
    assert code == 2
    assert "refusing" in err
    assert out == ""


def test_list_explains_why_no_tensorrt_engine_can_run_here(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if HAS_TENSORRT:
        pytest.skip("tensorrt is installed here")
    code, out, _err = run_cli(capsys, "engines", "list", "--cache", str(tmp_path))
    assert code == 0
    assert "no TensorRT engine can be used here: python module tensorrt not importable" in out
    assert "no CUDA GPU visible" in out
    assert "onnxruntime" in out
    assert "0 engine(s)" in out


def test_verify_flags_entries_unusable_here(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = EngineKey("a" * 64, "10.3.0", "Orin", "8.7", "fp16", "1-1-4x6")
    cache = EngineCache(tmp_path)
    cache.store("imu", key, b"engine")
    broken = cache.store(
        "cam", EngineKey("b" * 64, "10.3.0", "Orin", "8.7", "fp16", "1-1-4x6"), b"x"
    )
    broken.write_bytes(b"truncated")
    code, out, err = run_cli(capsys, "engines", "verify", "--cache", str(tmp_path))
    assert code == 1
    assert "2 engine(s) not usable here" in err
    assert re.search(r"cam .*unusable: corrupt engine", out)
    assert re.search(r"imu .*(not usable here|not for this machine)", out)
    assert run_cli(capsys, "engines", "list", "--cache", str(tmp_path))[0] == 0


def test_verify_of_an_empty_cache_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_cli(capsys, "engines", "verify", "--cache", str(tmp_path / "none"))[0] == 0


def test_build_with_a_bad_manifest_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(json.dumps({"version": 1, "engines": [{"name": "x"}]}))
    code, _, err = run_cli(capsys, "engines", "build", "--manifest", str(path))
    assert code == 2
    assert "missing adapter" in err


def test_build_without_tensorrt_is_a_runtime_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if HAS_TENSORRT:
        pytest.skip("tensorrt is installed here")
    make_tiny_adapter(tmp_path / "imu", tiny_spec(Modality.IMU))
    path = tmp_path / "manifest.yaml"
    path.write_text("version: 1\nengines:\n  - {name: imu, adapter: imu}\n")
    code, _out, err = run_cli(capsys, "engines", "build", "--manifest", str(path), "--no-progress")
    assert code == 1
    assert "cannot build TensorRT engines here: python module tensorrt not importable" in err
    assert not (tmp_path / "cache").exists()  # nothing half-built


def test_engines_without_subcommand_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "engines")[0] == 2
