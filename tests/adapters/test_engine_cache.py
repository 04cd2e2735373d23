"""Engine cache keys, hits and misses; a corrupt or foreign engine is a logged miss."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest

from mm_ros.core.errors import ConfigError
from mm_ros.engines.cache import EngineCache, EngineKey, ShapeProfile

KEY = EngineKey(
    onnx_sha256="a" * 64,
    tensorrt_version="10.3.0",
    gpu_name="Orin",
    compute_capability="8.7",
    precision="fp16",
    shape_profile=ShapeProfile(1, 1, 4, (3, 224, 224)).label(),
)
CHANGES = {
    "onnx_sha256": "b" * 64,
    "tensorrt_version": "11.0.0",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "precision": "fp32",
    "shape_profile": ShapeProfile(1, 2, 8, (3, 224, 224)).label(),
}
ENGINE = b"\x00serialized-engine\xff" * 10


def test_every_key_field_is_covered() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(EngineKey)}


@pytest.mark.parametrize(("field", "value"), sorted(CHANGES.items()))
def test_key_changes_when_any_keyed_input_changes(field: str, value: str) -> None:
    changed = dataclasses.replace(KEY, **{field: value})
    assert changed.digest() != KEY.digest()
    assert changed.differences(KEY) == [f"{field}: {value!r} != {getattr(KEY, field)!r}"]


def test_key_is_stable_for_equal_inputs() -> None:
    again = EngineKey(**dataclasses.asdict(KEY))
    assert again.digest() == KEY.digest()
    assert EngineCache(Path("c")).path_for("cam", again) == EngineCache(Path("c")).path_for(
        "cam", KEY
    )


@pytest.mark.parametrize(
    ("profile", "label"),
    [
        (ShapeProfile(1, 1, 4, (3, 224, 224)), "1-1-4x3x224x224"),
        (ShapeProfile(2, 2, 2, (16000,)), "2-2-2x16000"),
    ],
)
def test_shape_profile_label(profile: ShapeProfile, label: str) -> None:
    assert profile.label() == label
    assert profile.min_shape[0] == profile.min_batch
    assert profile.max_shape[1:] == profile.sample_shape


def test_shape_profile_rejects_unordered_batches() -> None:
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        ShapeProfile(4, 1, 2, (3,))


def test_store_then_hit(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    path = cache.store("cam", KEY, ENGINE)
    found = cache.lookup("cam", KEY)
    assert found.hit
    assert found.engine == ENGINE
    assert found.path == path
    assert [e.problem for e in cache.entries()] == [""]
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


def test_missing_engine_is_a_logged_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        found = EngineCache(tmp_path).lookup("cam", KEY)
    assert not found.hit
    assert "no engine built for this key" in found.reason
    assert "engine cache miss for cam" in caplog.text


def _corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))


def _foreign(path: Path) -> None:
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["key"]["gpu_name"] = "Tesla T4"
    sidecar.write_text(json.dumps(meta))


def _no_sidecar(path: Path) -> None:
    path.with_suffix(".json").unlink()


def _garbled_sidecar(path: Path) -> None:
    path.with_suffix(".json").write_text("{")


def _keyless_sidecar(path: Path) -> None:
    path.with_suffix(".json").write_text(json.dumps({"key": {"gpu_name": 3}}))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_corrupt, "corrupt engine"),
        (_flip, "sha256 differs"),
        (_foreign, "foreign engine: gpu_name: 'Tesla T4' != 'Orin'"),
        (_no_sidecar, "sidecar .* missing"),
        (_garbled_sidecar, "sidecar .* unreadable"),
        (_keyless_sidecar, "has no valid key"),
    ],
)
def test_damaged_or_foreign_engine_is_a_logged_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage, reason: str
) -> None:
    cache = EngineCache(tmp_path)
    damage(cache.store("cam", KEY, ENGINE))
    with caplog.at_level(logging.WARNING):
        found = cache.lookup("cam", KEY)
    assert not found.hit
    assert found.engine is None
    assert re.search(reason, found.reason)
    assert "engine cache miss for cam" in caplog.text
    (entry,) = cache.entries()
    assert entry.problem  # `mm-ros engines list` shows it as unusable


def _returns_none(_: bytes) -> None:
    return None


def _raises(_: bytes) -> None:
    raise RuntimeError("Serialization assertion magicTagRead failed")


@pytest.mark.parametrize(
    ("deserialize", "reason"),
    [(_returns_none, "returned None"), (_raises, "raised RuntimeError: Serialization")],
)
def test_undeserializable_engine_is_a_logged_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, deserialize, reason: str
) -> None:
    cache = EngineCache(tmp_path)
    cache.store("cam", KEY, ENGINE)
    with caplog.at_level(logging.WARNING):
        engine, why = cache.load("cam", KEY, deserialize)
    assert engine is None
    assert reason in why
    assert reason in caplog.text


def test_load_hit_returns_the_deserialized_engine(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.store("cam", KEY, ENGINE)
    engine, why = cache.load("cam", KEY, lambda blob: ("engine", len(blob)))
    assert (engine, why) == (("engine", len(ENGINE)), "hit")


def test_entries_of_a_missing_cache(tmp_path: Path) -> None:
    assert EngineCache(tmp_path / "none").entries() == []
