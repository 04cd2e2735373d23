from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mm_ros.adapters.build import build_adapter
from mm_ros.adapters.spec import Modality
from mm_ros.adapters.tiny import tiny_spec
from mm_ros.core.boxes import BoxFormat, BoxScale
from mm_ros.core.errors import BackendError
from mm_ros.core.prompt import MINIGPT_TASKS, PromptConfig
from mm_ros.llm.backends import composed
from mm_ros.llm.backends.composed import MODEL_JSON, read_manifest, save_composed
from mm_ros.llm.tiny import build_random_default, tiny_llm_config, tiny_vocabulary
from mm_ros.llm.tokens import word_level_tokenizer
from tests.llm.conftest import load


def test_random_default_loads_with_every_modality(tiny_dir: Path) -> None:
    backend = load(tiny_dir)
    assert set(backend.sessions) == {"image", "audio", "imu"}
    assert backend.model_id.startswith("mm-tiny@")
    assert backend.model_id.endswith(" (random weights)")
    assert backend.random_init
    assert backend.box_format is BoxFormat.MINIGPT_V2
    assert backend.box_scale is BoxScale.PERCENT
    assert backend.identities["imu"].adapter_id == "mm-tiny-imu"
    assert len(backend.identities["imu"].checkpoint_sha256) == 64
    assert backend.selections["image"].runtime.kind.value == "torch"
    assert not backend.model.training
    width = backend.model.get_input_embeddings().embedding_dim
    encoded = backend.sessions["image"].encode_image(
        torch.zeros(24, 32, 3, dtype=torch.uint8).numpy()
    )
    assert encoded.tokens.shape[1] == width


def test_random_default_is_deterministic_per_seed(tmp_path: Path, tiny_dir: Path) -> None:
    from safetensors.torch import load_file

    # Tensors, not file bytes: safetensors orders the header's metadata keys arbitrarily.
    again = build_random_default(tmp_path / "a", seed=0)
    other = build_random_default(tmp_path / "b", seed=1)
    weights = sorted(p.relative_to(tiny_dir) for p in tiny_dir.rglob("*.safetensors"))
    assert len(weights) == 4  # LM + three adapters
    for name in weights:
        first, second = load_file(tiny_dir / name), load_file(again / name)
        assert all(torch.equal(first[k], second[k]) for k in first), name
        third = load_file(other / name)
        assert not all(torch.equal(first[k], third[k]) for k in first), name
    assert (again / "llm" / "tokenizer.json").read_bytes() == (
        tiny_dir / "llm" / "tokenizer.json"
    ).read_bytes()
    assert load(other).model_id != load(tiny_dir).model_id


def _hand_model(tmp_path: Path, **kwargs: object) -> tuple[Path, torch.nn.Module]:
    from transformers import Qwen2ForCausalLM

    words, special = tiny_vocabulary()
    tokenizer = word_level_tokenizer(words, special)
    torch.manual_seed(3)
    model = Qwen2ForCausalLM(tiny_llm_config(len(tokenizer), "qwen2", tokenizer)).eval()
    spec = tiny_spec(Modality.IMU, name="hand-imu")
    folder = save_composed(
        tmp_path / "hand",
        name="hand",
        model=model,
        tokenizer=tokenizer,
        adapters={"imu": (build_adapter(spec, seed=1), spec)},
        **kwargs,  # type: ignore[arg-type]
    )
    return folder, model


def test_round_trip_gives_the_same_logits_and_settings(tmp_path: Path) -> None:
    prompt = PromptConfig(
        system_text="be brief", modality_order=("imu", "image"), tasks=("vqa", "audio")
    )
    folder, model = _hand_model(
        tmp_path, box_format=BoxFormat.SHIKRA, box_scale=BoxScale.PERMILLE, prompt=prompt
    )
    backend = load(folder)
    ids = torch.tensor([[2, 10, 11, 12, 13]])
    with torch.inference_mode():
        expected = model(input_ids=ids).logits
        found = backend.model(input_ids=ids).logits
    torch.testing.assert_close(found, expected, rtol=0, atol=0)
    assert backend.prompt == prompt
    assert (backend.box_format, backend.box_scale) == (BoxFormat.SHIKRA, BoxScale.PERMILLE)
    assert not backend.random_init
    assert backend.model_id.startswith("hand@")
    assert "random" not in backend.model_id


def test_config_overrides_box_settings(tmp_path: Path) -> None:
    folder, _ = _hand_model(tmp_path, box_scale=BoxScale.UNIT)
    assert load(folder).box_scale is BoxScale.UNIT
    chosen = load(folder, box_format="qwen2-vl")  # a format brings its usual scale
    assert (chosen.box_format, chosen.box_scale) == (BoxFormat.QWEN2_VL, BoxScale.PERMILLE)
    assert load(folder, box_scale="pixels").box_scale is BoxScale.PIXELS


def test_model_id_follows_the_weights(tmp_path: Path, tiny_dir: Path) -> None:
    copy = Path(shutil.copytree(tiny_dir, tmp_path / "copy"))
    before = load(copy).model_id
    spec = read_manifest(copy)
    imu = copy / spec.adapters["imu"]
    from mm_ros.adapters.checkpoint import load_adapter, save_adapter

    loaded = load_adapter(imu)
    with torch.no_grad():
        next(loaded.module.parameters()).add_(1.0)
    save_adapter(loaded.module, loaded.spec, imu)
    assert load(copy).model_id != before


def test_a_pickled_language_model_is_refused_with_how_to_convert(
    tmp_path: Path, tiny_dir: Path
) -> None:
    from safetensors.torch import load_file

    from mm_ros.core.errors import CheckpointError

    copy = Path(shutil.copytree(tiny_dir, tmp_path / "copy"))
    llm = copy / read_manifest(copy).llm
    torch.save(load_file(str(llm / "model.safetensors")), llm / "pytorch_model.bin")
    (llm / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"pickled weights \['pytorch_model.bin'\]") as err:
        load(copy)
    assert "safe_serialization=True" in str(err.value)


def test_adapter_width_must_match_the_language_model(tmp_path: Path, tiny_dir: Path) -> None:
    import dataclasses

    from mm_ros.adapters.checkpoint import save_adapter

    copy = Path(shutil.copytree(tiny_dir, tmp_path / "copy"))
    spec = dataclasses.replace(tiny_spec(Modality.IMU, name="wide-imu"), llm_width=48)
    save_adapter(build_adapter(spec, seed=0), spec, copy / "adapters" / "imu")
    with pytest.raises(BackendError, match=r"wide-imu.*llm_width 48.*hidden size 32"):
        load(copy)


def test_save_refuses_an_adapter_of_another_width(tmp_path: Path) -> None:
    import dataclasses

    spec = dataclasses.replace(tiny_spec(Modality.IMU), llm_width=48)
    words, special = tiny_vocabulary()
    tokenizer = word_level_tokenizer(words, special)
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(tiny_llm_config(len(tokenizer)))
    with pytest.raises(BackendError, match="llm_width 48"):
        save_composed(
            tmp_path / "m",
            name="m",
            model=model,
            tokenizer=tokenizer,
            adapters={"imu": (build_adapter(spec), spec)},
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("name"), "missing field 'name'"),
        (lambda d: d.update(llm=3), "llm: expected str, found 3"),
        (lambda d: d.update(llm="/abs/llm"), "inside the model folder"),
        (lambda d: d.update(backend="hf-vlm"), "backend: expected 'composed', found 'hf-vlm'"),
        (lambda d: d.update(format_version=2), "format_version 2 is newer"),
        (lambda d: d.update(format_version=True), "format_version: expected int"),
        (lambda d: d.update(adapters={"smell": "adapters/imu"}), "unknown modality 'smell'"),
        (lambda d: d.update(box_format="yolo"), "box_format: expected one of"),
        (lambda d: d.update(extra=1), r"unknown field\(s\) \['extra'\]"),
        (lambda d: d["prompt"].update(colour="red"), r"prompt: unknown field\(s\) \['colour'\]"),
        (lambda d: d["prompt"].update(tasks=["hearing"]), r"prompt: tasks: expected some of"),
        (lambda d: d["prompt"].update(tasks="vqa"), r"prompt.tasks: expected a list"),
        (lambda d: d.update(chat_template="yes"), "chat_template: expected bool"),
        (lambda d: d["adapters"].update(imu="adapters/none"), "adapters.imu"),
    ],
)
def test_bad_model_json_names_the_field(tmp_path: Path, tiny_dir: Path, change, message) -> None:
    copy = Path(shutil.copytree(tiny_dir, tmp_path / "copy"))
    data = json.loads((copy / MODEL_JSON).read_text())
    change(data)
    (copy / MODEL_JSON).write_text(json.dumps(data))
    with pytest.raises(BackendError, match=message) as err:
        load(copy)
    assert MODEL_JSON in str(err.value)


def test_a_model_json_without_tasks_knows_minigpt_v2s(tmp_path: Path, tiny_dir: Path) -> None:
    copy = Path(shutil.copytree(tiny_dir, tmp_path / "copy"))
    data = json.loads((copy / MODEL_JSON).read_text())
    del data["prompt"]["tasks"]  # as written before models said which tasks they know
    (copy / MODEL_JSON).write_text(json.dumps(data))
    assert load(copy).prompt.tasks == MINIGPT_TASKS


def test_missing_or_broken_model_json(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match=r"mm_model\.json not found"):
        load(tmp_path / "empty")
    (tmp_path / "empty" / MODEL_JSON).write_text("{not json")
    with pytest.raises(BackendError, match="not valid JSON"):
        load(tmp_path / "empty")


def test_default_is_built_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(composed, "PACKAGE_MODEL", tmp_path / "no-package-model")
    monkeypatch.setenv("MM_ROS_CACHE", str(tmp_path / "cache"))
    first = composed.default_model_dir()
    assert first.parent == tmp_path / "cache"
    assert (first / MODEL_JSON).is_file()
    stamp = (first / MODEL_JSON).stat().st_mtime_ns
    assert composed.default_model_dir() == first
    assert (first / MODEL_JSON).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no scratch left
    assert load("").model_id == load(first).model_id  # model_dir "" = the embedded default
