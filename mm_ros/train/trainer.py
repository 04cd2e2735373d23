"""The AnyMAL recipe for a composed model, as used for mm-tiny.

Stage 1 (alignment): the language model is frozen; the adapters (encoders + projectors) learn
to caption snapshots. Stage 2 (instruction tuning): questions of every kind with their task
identifiers; for mm-tiny the small language model, which starts from random weights, is trained
too. Stage 3 (crowd tuning) goes on with stage 2's questions from a fresh optimizer at a lower
learning rate, most of each batch drawn from snapshots with several objects in view. Every
step's batch depends only on (seed, step), so a resumed run continues exactly where
a checkpoint left it. Checkpoints are safetensors + JSON, never pickles.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mm_ros.core.boxes import BoxFormat
from mm_ros.core.errors import CheckpointError, ConfigError
from mm_ros.sim.scene import Colour, Shape
from mm_ros.train import data as data_mod
from mm_ros.train import mm_tiny, regions
from mm_ros.train.layout import IGNORE, drop_words, packed_batch, training_backend
from mm_ros.train.tasks import Kind

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from torch import nn

    from mm_ros.adapters.spec import AdapterSpec
    from mm_ros.train.data import Dataset, Example

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
STATE_FILE = "state.json"
WEIGHTS_FILE = "weights.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
LOG_FILE = "train_log.jsonl"
MODEL_FOLDER = "mm-tiny"
MODALITIES = ("image", "audio", "imu")
# Stage 2 asks every question a snapshot has; its caption only this often, so the adapters
# keep what stage 1 taught them without captions crowding out the instructions.
CAPTION_SHARE = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """One training run; ``seed`` fixes the initialisation, the data order and word dropout."""

    seed: int = 0
    train_episodes: int = 200  # 600 (with antialiased input) was tried: model card
    snapshots_per_episode: int = 30
    stage1_steps: int = 80
    stage2_steps: int = 9920
    batch: int = 8  # snapshots per step; every question about each is asked (about 45 in all)
    lr_stage1: float = 5e-4  # gentle: captions through a frozen random LM teach little
    # 1e-3, not 3e-3: at 3e-3 the lookup "which image token is the named object" never formed
    # (oracle probe: 47 % after 2 250 steps at 3e-3, 85 % after 600 at 1e-3; model card).
    lr_stage2: float = 1e-3
    # Stage 2 adds question kinds one group at a time (stage-2 step, kinds): a random LM
    # given every kind at once stays on the answer priors for thousands of steps, because
    # "which block to read" depends on the question; taught one kind after another, each new
    # kind is learnt in a few hundred steps.
    curriculum: tuple[tuple[int, tuple[str, ...]], ...] = (
        # the image first: taught after the others, its adapter has already gone constant
        (0, ("spatial", "spatial-list")),
        (600, ("motion",)),
        (800, ("audio",)),
        (1000, ("identify",)),
        (1400, ("grounding", "refer", "absent")),
    )
    # Questions about the image are first asked only of snapshots with few objects in view
    # (stage-2 step, most objects in view; empty: no limit). A random LM learns to read one
    # object's tokens quickly but to pick the named object among many only after it can read
    # one (model card: oracle probe).
    crowd_curriculum: tuple[tuple[int, int], ...] = ()
    # Stage 3 (crowd tuning): after stage 2 an object alone in view is boxed right almost
    # always, one among three about half the time (model card). A fresh AdamW (warmup, cosine)
    # goes on with every kind, ``stage3_crowd_share`` of each batch drawn from the snapshots
    # with at least ``stage3_crowd`` objects in view. It starts from stage 2's weights alone,
    # so a finished stage-2 model can be continued exactly (`start_stage3`).
    stage3_steps: int = 0
    lr_stage3: float = 3e-4
    stage3_crowd: int = 2
    stage3_crowd_share: float = 0.75
    warmup_steps: int = 50
    weight_decay: float = 0.01
    word_dropout: float = 0.05  # question words replaced by <unk>: new words are not fatal
    # of those, made-up words instead (spelt in pieces, as a user's words the vocabulary lacks)
    made_up_share: float = 0.5
    # Spatial, audio and motion questions asked with [vqa] instead of their own identifier this
    # often: an asker may still give [vqa] (or a model-agnostic client always does), and then
    # the kind must come from the words.
    vqa_share: float = 0.2
    # Adapter tokens longer than this (L2) are penalised. Without it the projectors grow a
    # large constant vector (norm ~60 against ~0.7 for word embeddings) that the LM's RMSNorm
    # keeps and the input-dependent part (~1 %) drowns in: the LM then ignores the sensors.
    token_norm_max: float = 2.0
    token_norm_weight: float = 0.01
    # Token-space alignment of the image tokens (`regions`): each token is pulled towards the
    # LM's words for what it shows, which keeps the image tokens informative while the LM is
    # still random (without it they collapse to a constant; model card).
    align_weight: float = 1.0
    align_scale: float = 16.0
    align_min_cover: float = 0.15
    # Each object token also picks its object's shape among the shape words, and its colour
    # among the colour words (`regions.choice_loss`), this much of each: in the alignment loss
    # above a shape is a seventh of an object token's target and object tokens are about one in
    # eight, and the shipped model's tokens read shape right 52 % of the time against 93 % for
    # colour (model card).
    align_shape_weight: float = 0.0
    align_colour_weight: float = 0.0
    every_object: bool = True  # DataConfig.every_object: questions about every object
    every_side: bool = True  # DataConfig.every_side: 'what is on my left?' about every side
    checkpoint_every: int = 100
    log_every: int = 25
    device: str = ""  # "" = cuda when present, else cpu
    threads: int = 0  # torch CPU threads, 0 = torch's default
    model: mm_tiny.TinyConfig = field(default_factory=mm_tiny.TinyConfig)

    def __post_init__(self) -> None:
        steps = (self.stage1_steps, self.stage2_steps, self.stage3_steps)
        if min(steps) < 0:
            raise ConfigError(f"steps of stages 1, 2 and 3 must be >= 0, found {steps}")
        if not 0.0 <= self.vqa_share <= 1.0:
            raise ConfigError(f"vqa_share must be in [0, 1], found {self.vqa_share}")
        if not 0.0 <= self.stage3_crowd_share <= 1.0:
            raise ConfigError(
                f"stage3_crowd_share must be in [0, 1], found {self.stage3_crowd_share}"
            )
        if self.batch < 1 or self.train_episodes < 1:
            raise ConfigError(f"batch and train_episodes must be >= 1, found {self}")

    @property
    def stage3_start(self) -> int:
        """The first step of stage 3 (the end of stage 2)."""
        return self.stage1_steps + self.stage2_steps

    @property
    def total_steps(self) -> int:
        """All three stages."""
        return self.stage3_start + self.stage3_steps

    def stage_at(self, step: int) -> int:
        """Return the stage (1, 2 or 3) that ``step`` belongs to."""
        if step < self.stage1_steps:
            return 1
        return 2 if step < self.stage3_start else 3

    def resolved_device(self) -> str:
        """Return the device to train on."""
        if self.device:
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"


class TinyModel:
    """The language model, its tokenizer and the three adapters being trained."""

    def __init__(self, config: mm_tiny.TinyConfig, seed: int) -> None:
        from mm_ros.adapters.build import build_adapter

        self.prompt = mm_tiny.prompt_config()
        self.tokenizer = mm_tiny.build_tokenizer(self.prompt)
        torch.manual_seed(seed)
        self.llm: Any = mm_tiny.build_llm(config, len(self.tokenizer), self.tokenizer)
        self.specs: dict[str, AdapterSpec] = mm_tiny.adapter_specs(config)
        self.adapters: dict[str, nn.Module] = {
            m: build_adapter(spec, seed=seed + 1 + i)
            for i, (m, spec) in enumerate(self.specs.items())
        }
        self.backend = training_backend(self.llm, self.tokenizer, self.prompt)

    def modules(self) -> dict[str, nn.Module]:
        """Every trained module by a stable prefix (for state dicts)."""
        out: dict[str, nn.Module] = {"llm": self.llm}
        out.update({f"adapter.{m}": a for m, a in self.adapters.items()})
        return out

    def to(self, device: str) -> TinyModel:
        """Move every module to ``device``."""
        for module in self.modules().values():
            module.to(device)
        return self

    def train(self, mode: bool = True) -> None:
        """Set train / eval mode on every module."""
        for module in self.modules().values():
            module.train(mode)

    def state(self) -> dict[str, torch.Tensor]:
        """All weights, keys prefixed by module (tied weights stored once)."""
        out: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for prefix, module in self.modules().items():
            for key, value in module.state_dict().items():
                if value.data_ptr() in seen:
                    continue
                seen.add(value.data_ptr())
                out[f"{prefix}.{key}"] = value.detach().contiguous().cpu()
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`state` returned."""
        for prefix, module in self.modules().items():
            own = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
            try:
                missing, unexpected = module.load_state_dict(own, strict=False)
            except RuntimeError as err:  # a tensor of another shape: another model size
                raise CheckpointError(f"checkpoint does not match {prefix}: {err}") from err
            # tied output weights are stored once, under the input embedding's name
            missing = [k for k in missing if k != "lm_head.weight"]
            if missing or unexpected:
                raise CheckpointError(
                    f"checkpoint does not match {prefix}: missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]}"
                )

    def load_folder(self, folder: Path) -> None:
        """Load the weights of a saved model folder (what :meth:`save` wrote)."""
        from safetensors.torch import load_file

        from mm_ros.adapters.checkpoint import load_adapter
        from mm_ros.llm.backends.composed import read_manifest

        manifest = read_manifest(folder)
        state = {
            f"llm.{k}": v
            for k, v in load_file(str(folder / manifest.llm / "model.safetensors")).items()
        }
        for modality, sub in manifest.adapters.items():
            adapter = load_adapter(folder / sub)  # validates the spec and the weights
            if adapter.spec != self.specs.get(modality):
                raise CheckpointError(
                    f"{folder / sub}: the adapter there is not this recipe's {modality} adapter "
                    f"(expected {self.specs.get(modality)}, found {adapter.spec})"
                )
            state.update(
                {f"adapter.{modality}.{k}": v for k, v in adapter.module.state_dict().items()}
            )
        self.load_state(state)

    def save(self, folder: Path) -> Path:
        """Write the composed model folder the service loads (mm_model.json, llm/, adapters/)."""
        from mm_ros.llm.backends.composed import save_composed

        self.train(False)
        model = self.llm.to("cpu")
        adapters = {m: (a.to("cpu"), self.specs[m]) for m, a in self.adapters.items()}
        return save_composed(
            folder,
            name=mm_tiny.MODEL_NAME,
            model=model,
            tokenizer=self.tokenizer,
            adapters=adapters,
            box_format=BoxFormat.MINIGPT_V2,
            prompt=self.prompt,
        )


def inputs_of(model: TinyModel) -> data_mod.Inputs:
    """Return the preprocessing constants of ``model``'s adapters."""
    return data_mod.Inputs.of(model.specs)


def _by_snapshot(examples: Sequence[Example]) -> dict[int, list[Example]]:
    out: dict[int, list[Example]] = {}
    for e in examples:
        out.setdefault(e.snap, []).append(e)
    return out


def kinds_at(stage2_step: int, config: TrainConfig) -> set[str]:
    """Question kinds taught at ``stage2_step`` (the curriculum so far)."""
    return {k for start, kinds in config.curriculum if start <= stage2_step for k in kinds}


def parse_crowd(text: str) -> tuple[tuple[int, int], ...]:
    """``"0:1,400:2,800:99"`` → ((0, 1), (400, 2), (800, 99)); steps increasing, limits >= 1."""
    stages: list[tuple[int, int]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        step, sep, most = part.partition(":")
        try:
            stage = (int(step), int(most)) if sep else None
        except ValueError:
            stage = None
        if stage is None or stage[0] < 0 or stage[1] < 1:
            raise ConfigError(
                f"crowd curriculum: expected STEP:MOST_OBJECTS pairs like 0:1,400:2, found {part!r}"
            )
        if stages and stage[0] <= stages[-1][0]:
            raise ConfigError(f"crowd curriculum: steps must increase, found {text!r}")
        stages.append(stage)
    return tuple(stages)


def crowd_limit(stage2_step: int, config: TrainConfig) -> int | None:
    """Most objects in view a snapshot may have for image questions now (None: any)."""
    limit = None
    for start, most in config.crowd_curriculum:
        if start <= stage2_step:
            limit = most
    return limit


def step_rows(
    step: int,
    config: TrainConfig,
    by_snap: dict[int, list[Example]],
    rng: np.random.Generator,
    in_view: Sequence[int] = (),
) -> list[list[Example]]:
    """Return the questions of one step: per chosen snapshot, its captions or its questions.

    ``in_view`` (objects in view per snapshot) applies ``config.crowd_curriculum``.
    """
    snaps = sorted(by_snap)
    limit = crowd_limit(step - config.stage1_steps, config) if in_view else None
    if limit is not None:  # the crowd curriculum draws from the snapshots it allows
        snaps = [snap for snap in snaps if in_view[snap] <= limit] or snaps
    if config.stage_at(step) == 3 and in_view:  # noqa: PLR2004
        chosen = _crowded_first(snaps, in_view, config, rng)
    else:
        picked = rng.choice(len(snaps), size=min(config.batch, len(snaps)), replace=False)
        chosen = [snaps[int(index)] for index in picked]
    rows = []
    for snap in chosen:
        examples = by_snap[snap]
        captions = [e for e in examples if e.kind == Kind.CAPTION.value]
        if step < config.stage1_steps:
            row = captions
        else:
            allowed = kinds_at(step - config.stage1_steps, config)
            row = [e for e in examples if e.kind in allowed]
            if captions and rng.random() < CAPTION_SHARE:
                row += captions
        if row:
            rows.append(row)
    return rows


def _crowded_first(
    snaps: Sequence[int], in_view: Sequence[int], config: TrainConfig, rng: np.random.Generator
) -> list[int]:
    """Stage 3's snapshots: ``stage3_crowd_share`` of the batch from the crowded ones."""
    crowded = [snap for snap in snaps if in_view[snap] >= config.stage3_crowd]
    wanted = min(len(crowded), round(config.batch * config.stage3_crowd_share))
    chosen = [crowded[int(i)] for i in rng.choice(len(crowded), size=wanted, replace=False)]
    rest = sorted(set(snaps) - set(chosen))
    more = min(config.batch - wanted, len(rest))
    return chosen + [rest[int(i)] for i in rng.choice(len(rest), size=more, replace=False)]


OWN_TASKS = frozenset({"spatial", "audio", "motion"})  # mm_ros's identifiers (core.prompt)


def as_vqa(task: str, rng: np.random.Generator | None, share: float) -> str:
    """Return ``task``, or ``vqa`` for one of mm_ros's own identifiers ``share`` of the time."""
    if rng is None or share <= 0 or task not in OWN_TASKS:
        return task
    return "vqa" if rng.random() < share else task


def batch_loss(
    model: TinyModel,
    dataset: Dataset,
    rows: Sequence[Sequence[Example]],
    device: str,
    *,
    rng: np.random.Generator | None = None,
    word_dropout: float = 0.0,
    made_up_share: float = 0.0,
    vqa_share: float = 0.0,
    token_norm_max: float = 0.0,
    token_norm_weight: float = 0.0,
    align: Alignment | None = None,
) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens (+ the adapter-norm and alignment terms).

    ``rows[b]`` are questions about one snapshot; they share its prompt prefix (`packed_batch`).
    """
    snaps = np.array([row[0].snap for row in rows])
    blocks = {
        "image": model.adapters["image"](
            torch.from_numpy(dataset.images[snaps].astype(np.float32)).to(device)
        ),
        "audio": model.adapters["audio"](
            torch.from_numpy(dataset.audio[snaps].astype(np.float32)).to(device)
        ),
        "imu": model.adapters["imu"](torch.from_numpy(dataset.imu[snaps]).to(device)),
    }
    items = []
    for row in rows:
        items.append(
            [
                (
                    as_vqa(e.task, rng, vqa_share),
                    drop_words(e.question, rng, word_dropout, made_up_share)
                    if rng is not None
                    else e.question,
                    e.answer,
                )
                for e in row
            ]
        )
    embeds, mask, positions, labels = packed_batch(model.backend, items, blocks)
    logits = model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE
    )
    if token_norm_weight > 0:
        for tokens in blocks.values():  # (B, N, D)
            excess = torch.relu(tokens.norm(dim=-1) - token_norm_max)
            loss = loss + token_norm_weight * excess.pow(2).mean()
    if align is not None and align.weight > 0:
        targets = torch.from_numpy(align.targets[snaps]).to(device)
        table = model.llm.get_input_embeddings().weight
        loss = loss + align.weight * regions.alignment_loss(
            blocks["image"], table, targets, align.scale
        )
        for choice in align.choices:
            loss = loss + choice.weight * regions.choice_loss(
                blocks["image"], table, targets, choice.slot, choice.words.to(device),
                scale=align.scale,
            )  # fmt: skip
    return loss


# The first slots of `regions.token_targets`, in order, and their words: what the choice terms
# (`Alignment.choices`) and the token probe (`tools/token_probe.py`) read off an object token.
SLOT_WORDS = {
    "colour": tuple(c.label for c in Colour),
    "shape": tuple(s.value for s in Shape),
}


@dataclass(frozen=True)
class Alignment:
    """Token-space alignment targets of every snapshot's image tokens, and the loss settings."""

    targets: np.ndarray  # (snapshots, tokens, K) token ids, regions.PAD-padded
    weight: float
    scale: float
    choices: tuple[Choice, ...] = ()

    @classmethod
    def of(cls, model: TinyModel, dataset: Dataset, config: TrainConfig) -> Alignment | None:
        """Targets for ``dataset`` (None when disabled or the dataset has no objects)."""
        if config.align_weight <= 0 or not dataset.objects:
            return None
        targets = image_token_targets(model, dataset, config.align_min_cover)
        vocab = model.tokenizer.get_vocab()
        weights = {"colour": config.align_colour_weight, "shape": config.align_shape_weight}
        choices = tuple(
            Choice(slot, torch.tensor([vocab[w] for w in words if w in vocab]), weights[name])
            for slot, (name, words) in enumerate(SLOT_WORDS.items())
            if weights[name] > 0
        )
        return cls(targets, config.align_weight, config.align_scale, choices)


@dataclass(frozen=True)
class Choice:
    """A slot of the object tokens' targets (0 colour, 1 shape) picked among its words."""

    slot: int
    words: torch.Tensor  # token ids
    weight: float


def image_token_targets(model: TinyModel, dataset: Dataset, min_cover: float) -> np.ndarray:
    """`regions.token_targets` of every snapshot, for ``model``'s image tokens."""
    from mm_ros.adapters.spec import ReducerKind

    spec = model.specs["image"]
    assert spec.image is not None  # the image adapter has image preprocessing
    columns = spec.reducer.kind is ReducerKind.CONCAT4_COLUMNS
    strip = 4 if columns or spec.reducer.kind is ReducerKind.CONCAT4 else 1
    boxes = regions.token_regions(
        spec.image.size_px, spec.encoder.patch_px, strip, *dataset.image_size, columns=columns
    )
    vocab = model.tokenizer.get_vocab()
    return regions.token_targets(dataset.objects, boxes, vocab, min_cover)


def lr_at(step: int, config: TrainConfig) -> float:
    """Warmup then cosine decay to 10 %, per stage."""
    stage = config.stage_at(step)
    if stage == 1:
        local, length, peak = step, config.stage1_steps, config.lr_stage1
    elif stage == 2:  # noqa: PLR2004
        local, length, peak = step - config.stage1_steps, config.stage2_steps, config.lr_stage2
    else:
        local, length, peak = step - config.stage3_start, config.stage3_steps, config.lr_stage3
    warm = min(config.warmup_steps, max(1, length // 5))
    if local < warm:
        return peak * (local + 1) / warm
    progress = (local - warm) / max(1, length - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _optimizer(model: TinyModel, stage: int, config: TrainConfig) -> torch.optim.Optimizer:
    trainable = [p for a in model.adapters.values() for p in a.parameters()]
    for p in model.llm.parameters():
        p.requires_grad_(stage == 2)  # noqa: PLR2004 - stage 1 freezes the LM (AnyMAL)
    if stage == 2:  # noqa: PLR2004
        trainable += list(model.llm.parameters())
    return torch.optim.AdamW(trainable, lr=config.lr_stage1, weight_decay=config.weight_decay)


def _save_checkpoint(
    folder: Path, model: TinyModel, optimizer: torch.optim.Optimizer, step: int, config: TrainConfig
) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state(), str(folder / (WEIGHTS_FILE + ".tmp")))
    opt: dict[str, torch.Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            opt[f"{index}.{name}"] = tensor.detach().contiguous().cpu()
    save_file(opt, str(folder / (OPTIMIZER_FILE + ".tmp")))
    document = {"step": step, "config": asdict(config)}
    (folder / (STATE_FILE + ".tmp")).write_text(json.dumps(document, indent=1) + "\n")
    # renamed last, the state file last of all: a crash mid-write leaves the previous checkpoint
    for name in (WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE):
        (folder / (name + ".tmp")).replace(folder / name)


def _load_checkpoint(
    folder: Path, model: TinyModel, config: TrainConfig, device: str
) -> tuple[int, torch.optim.Optimizer]:
    from safetensors.torch import load_file

    document = json.loads((folder / STATE_FILE).read_text())
    saved = document["config"]
    # fields added to TinyConfig since the checkpoint was made take their defaults
    saved["model"] = {**asdict(mm_tiny.TinyConfig()), **saved["model"]}
    if saved["seed"] != config.seed or saved["model"] != asdict(config.model):
        raise CheckpointError(
            f"{folder}: checkpoint was made with seed {saved['seed']} and model {saved['model']}, "
            f"this run has seed {config.seed} and model {asdict(config.model)}"
        )
    step = int(document["step"])
    model.load_state(load_file(str(folder / WEIGHTS_FILE)))
    model.to(device)
    optimizer = _optimizer(model, min(2, config.stage_at(step)), config)
    tensors = load_file(str(folder / OPTIMIZER_FILE))
    state_dict = optimizer.state_dict()
    restored: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        restored.setdefault(int(index), {})[name] = value.to(device) if value.dim() else value
    state_dict["state"] = restored
    optimizer.load_state_dict(state_dict)
    return step, optimizer


def start_stage3(model_dir: Path, out: Path, config: TrainConfig) -> None:
    """Make ``out``'s checkpoint the end of stage 2 from a finished model folder.

    Stage 3 starts a fresh optimizer, so these weights are all it needs: ``train(config, out,
    resume=True)`` then runs stage 3 exactly as a run from scratch would (the model must be
    the stage-2 result of the same seed and recipe). The model's ``train_log.jsonl``, when
    there, starts the run's log.
    """
    if config.stage3_steps < 1:
        raise ConfigError("starting stage 3 from a model needs stage3_steps >= 1, found 0")
    if not (model_dir / "mm_model.json").is_file():
        raise ConfigError(f"{model_dir} is not a model folder (no mm_model.json in it)")
    model = TinyModel(config.model, config.seed)
    model.load_folder(model_dir)
    optimizer = _optimizer(model, 2, config)  # empty: stage 3 replaces it at its first step
    _save_checkpoint(out / CHECKPOINT, model, optimizer, config.stage3_start, config)
    log = model_dir / LOG_FILE
    if log.is_file():
        shutil.copyfile(log, out / LOG_FILE)


def train(  # noqa: PLR0912, PLR0915 - the loop reads best in one piece
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    stop_after: int = 0,
) -> Path:
    """Train mm-tiny into ``out`` (checkpoint/, train_log.jsonl, mm-tiny/); return the model folder.

    ``dataset`` overrides the generated one (tests train on a tiny subset). ``stop_after``
    (> 0) ends the run at that step with the schedule of the full run, and saves the model from
    there: a run cut short for time is reproduced exactly by the same arguments.
    """
    device = config.resolved_device()
    if config.threads:
        torch.set_num_threads(config.threads)
    model = TinyModel(config.model, config.seed).to(device)
    if dataset is None:
        data_config = data_mod.DataConfig(
            seeds=data_mod.train_seeds(config.train_episodes),
            snapshots_per_episode=config.snapshots_per_episode,
            every_object=config.every_object,
            every_side=config.every_side,
        )
        dataset = data_mod.load_or_build(data_config, inputs_of(model), out / "data", progress)
    by_snap = _by_snapshot(dataset.examples)
    in_view = [len(objects) for objects in dataset.objects]
    if config.crowd_curriculum and len(in_view) != len(dataset.images):
        raise ConfigError("crowd_curriculum needs the objects of every snapshot in the dataset")
    align = Alignment.of(model, dataset, config)
    checkpoint = out / CHECKPOINT
    step = 0
    optimizer: torch.optim.Optimizer | None = None
    if resume and (checkpoint / STATE_FILE).is_file():
        step, optimizer = _load_checkpoint(checkpoint, model, config, device)
        log.info("resumed from %s at step %d", checkpoint, step)
    if optimizer is None:
        optimizer = _optimizer(model, 1 if config.stage1_steps else 2, config)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG_FILE
    if not resume and log_path.exists():
        log_path.unlink()
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.total_steps, initial=step, desc="train", unit="step")
    model.train(True)
    running: list[float] = []
    started = time.monotonic()
    last = min(stop_after, config.total_steps) if stop_after > 0 else config.total_steps
    while step < last:
        stage = config.stage_at(step)
        # each stage starts a fresh optimizer (stage 3 from stage 2's weights alone)
        if step > 0 and step in (config.stage1_steps, config.stage3_start):
            optimizer = _optimizer(model, 2, config)
        rng = np.random.default_rng([config.seed, step])
        rows = step_rows(step, config, by_snap, rng, in_view)
        if not rows:
            raise ConfigError(f"step {step}: none of the chosen snapshots has a question to ask")
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        loss = batch_loss(
            model,
            dataset,
            rows,
            device,
            rng=rng,
            word_dropout=config.word_dropout,
            made_up_share=config.made_up_share,
            vqa_share=config.vqa_share,
            token_norm_max=config.token_norm_max,
            token_norm_weight=config.token_norm_weight,
            align=align,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        value = float(loss.detach())
        running.append(value)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", stage=stage)
        if step % config.log_every == 0 or step == last:
            record = {
                "step": step,
                "stage": stage,
                "loss": sum(running) / len(running),
                "lr": lr_at(step - 1, config),
                "wall_s": round(time.monotonic() - started, 1),
            }
            running = []
            with log_path.open("a") as stream:
                stream.write(json.dumps(record) + "\n")
        if step % config.checkpoint_every == 0 or step == last:
            _save_checkpoint(checkpoint, model, optimizer, step, config)
        if on_step is not None:  # after the checkpoint: a callback may stop the run here
            on_step(step, value)
    if bar is not None:
        bar.close()
    return model.save(out / MODEL_FOLDER)
