"""``mm-ros interfaces``: the acceptance commands, in-process and through the entry point."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mm_ros.cli.main import main
from mm_ros.interfaces import get_store


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["example_interfaces/srv/AddTwoInts"],
            "RIHS01_e118de6bf5eeb66a2491b5bda11202e7b68f198d6f67922cf30364858239c81a",
        ),
        (
            ["std_msgs/msg/Char"],
            "RIHS01_3ad2d04dd29ba19d04b16659afa3ccaedd691914b02a64e82e252f2fa6a586a9",
        ),
        (["std_msgs/msg/String", "--distro", "humble"], "TypeHashNotSupported"),
        (["mm_ros/action/Ask", "--distro", "humble"], "TypeHashNotSupported"),
    ],
)
def test_hash(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert run_cli(capsys, "interfaces", "hash", *argv) == (0, expected + "\n", "")


def test_hash_of_ask_is_the_stores(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "interfaces", "hash", "mm_ros/action/Ask")
    assert code == 0
    assert out.strip() == get_store().hash("mm_ros/action/Ask")


def test_show_detection2d(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "interfaces", "show", "vision_msgs/msg/Detection2D")
    assert code == 0
    assert out.splitlines() == [
        "std_msgs/Header header",
        "vision_msgs/ObjectHypothesisWithPose[] results",
        "vision_msgs/BoundingBox2D bbox",
        "string id",
    ]


def test_show_standard_type_and_description(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "interfaces", "show", "std_msgs/Header")
    assert (code, out) == (0, "builtin_interfaces/Time stamp\nstring frame_id\n")
    code, out, _ = run_cli(capsys, "interfaces", "show", "--description", "std_msgs/msg/Char")
    assert code == 0
    assert '"type_id": 3' in out


def test_unknown_type_exits_2_naming_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "interfaces", "hash", "sensor_msgs/msg/Imag")
    assert code == 2
    assert out == ""
    assert "'sensor_msgs/msg/Imag'" in err
    assert "sensor_msgs/msg/Image" in err
    code, _, err = run_cli(capsys, "interfaces", "show", "mm_ros/msg/Answr")
    assert code == 2
    assert "mm_ros/msg/Answer" in err


def test_list_by_package(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "interfaces", "list", "--package", "mm_ros", "--hashes")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {
        "mm_ros/msg/Answer",
        "mm_ros/msg/Bearing",
        "mm_ros/msg/StageLatency",
        "mm_ros/msg/TokenEmbeddings",
        "mm_ros/action/Ask",
        "mm_ros/action/Ask_SendGoal_Request",
    } <= set(names)
    assert all(line.split()[1].startswith("RIHS01_") for line in out.splitlines())


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["interfaces"]) == 2
    with pytest.raises(SystemExit) as err:
        main(["interfaces", "hash", "std_msgs/msg/String", "--distro", "foxy"])
    assert err.value.code == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "-0.001"], "--lr must be >= 0"),
        (["--steps", "-1"], "--steps"),
        (["--crowd-curriculum", "5:1,2:2"], "steps must increase"),
        (["--stage3-steps", "-1"], "--stage3-steps"),
        (["--shape-weight", "-0.5"], "--shape-weight"),
        (["--colour-weight", "-1"], "--colour-weight"),
        (["--stage3-steps", "5", "--start-stage3", "nowhere"], "no mm_model.json"),
        (["--stage3-steps", "0", "--start-stage3", "nowhere"], "stage3_steps >= 1"),
        (["--start-stage3", "nowhere", "--resume"], "use one"),
    ],
)
def test_train_rejects_bad_settings_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    assert main(["train", "tiny", "--out", str(tmp_path / "run"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing generated or written


def test_train_flags_change_the_recipe_and_nothing_else() -> None:
    from mm_ros.cli.main import build_parser
    from mm_ros.cli.train_cmd import recipe
    from mm_ros.train.trainer import TrainConfig

    def config(*flags: str) -> TrainConfig:
        return recipe(build_parser().parse_args(["train", "tiny", *flags]))

    assert config() == TrainConfig()
    changed = config("--shape-weight", "2", "--episodes", "7", "--steps", "1000", "--antialias")
    assert changed.align_shape_weight == 2.0
    assert config("--colour-weight", "0.5").align_colour_weight == 0.5
    assert changed.train_episodes == 7
    assert (changed.stage1_steps, changed.stage2_steps) == (8, 992)
    assert changed.model.image_antialias
    assert config("--shape-weight", "0").align_shape_weight == 0.0
    assert dataclasses.replace(
        changed, align_shape_weight=0.0, train_episodes=TrainConfig().train_episodes,
        stage1_steps=TrainConfig().stage1_steps, stage2_steps=TrainConfig().stage2_steps,
        model=TrainConfig().model,
    ) == TrainConfig(align_shape_weight=0.0)  # fmt: skip


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("mm-ros")
    if not exe.exists():
        exe = Path(shutil.which("mm-ros") or "mm-ros")
    proc = subprocess.run(
        [str(exe), "interfaces", "hash", "std_msgs/msg/String"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("RIHS01_df668c74")


def test_ship_replaces_the_weights_and_keeps_the_model_card(tmp_path: Path) -> None:
    from mm_ros.cli.train_cmd import ship

    run = tmp_path / "run"
    (run / "mm-tiny" / "llm").mkdir(parents=True)
    (run / "mm-tiny" / "llm" / "model.safetensors").write_bytes(b"new")
    (run / "train_log.jsonl").write_text('{"step": 25}\n')
    package = tmp_path / "package"
    (package / "llm").mkdir(parents=True)
    (package / "llm" / "model.safetensors").write_bytes(b"old")
    (package / "llm" / "stale.bin").write_bytes(b"x")
    (package / "README.md").write_text("# card\n")
    (package / "eval.json").write_text("{}")
    ship(run / "mm-tiny", run, package)
    assert (package / "llm" / "model.safetensors").read_bytes() == b"new"
    assert not (package / "llm" / "stale.bin").exists()
    assert (package / "README.md").read_text() == "# card\n"
    assert (package / "train_log.jsonl").read_text() == '{"step": 25}\n'
    assert not (package / "eval.json").exists()  # it described the old weights
