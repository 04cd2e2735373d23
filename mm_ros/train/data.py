"""Training and evaluation examples from synthetic-world episodes, by seed.

An example is a snapshot's model inputs (image, audio, IMU after the service's own
preprocessing), a question, its answer and the truth that scores it. Snapshots are cut from
`SensorWindows` filled with the world's frames, audio chunks and IMU samples, exactly as the
service cuts them, and preprocessed with the functions `AdapterSession` uses. Rendered inputs
are cached as numpy arrays so training steps never re-render.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.core.errors import ConfigError
from mm_ros.core.intent import infer_task
from mm_ros.core.preprocessing import prepare_audio, preprocess_image, resample_imu
from mm_ros.core.prompt import Task
from mm_ros.core.sensors import Modality
from mm_ros.core.windows import (
    AudioWindow,
    FrameWindow,
    ImuWindow,
    SensorWindows,
    Snapshot,
    WindowConfig,
)
from mm_ros.sim.sound import Sound
from mm_ros.sim.world import NS_PER_S, FrameTruth, World, WorldConfig
from mm_ros.train import phrasing, tasks
from mm_ros.train.tasks import Kind

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from numpy.typing import NDArray

    from mm_ros.adapters.spec import AdapterSpec

# Disjoint seed ranges: training episodes never share a scene, path or soundtrack with held-out.
TRAIN_SEED_BASE = 1_000
HELDOUT_SEED_BASE = 900_000
IMAGE_SPAN_S = 2.0 / 30.0  # the newest frame is used: two frame periods at 30 Hz find it
CACHE_VERSION = 3  # 2: objects per snapshot (token-space alignment); 3: phrasing generator


def train_seeds(count: int) -> tuple[int, ...]:
    """Seeds of the training episodes."""
    return tuple(range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + count))


def heldout_seeds(count: int) -> tuple[int, ...]:
    """Seeds of the held-out episodes (never in `train_seeds`)."""
    return tuple(range(HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + count))


@dataclass(frozen=True)
class DataConfig:
    """Which episodes and which questions."""

    seeds: tuple[int, ...]
    snapshots_per_episode: int = 30
    duration_s: float = 30.0  # 30 s episodes: many scenes for the same rendering time
    unseen_phrasings: bool = False  # True: only the held-out templates (`phrasing.HELD_OUT`)
    # A question about an object out of view ('where is X?', 'find X') in this share of the
    # snapshots (the answer: "i do not see the X.").
    absent_share: float = 0.3
    # An object is "clear" (asked about) when this much of it shows and its box is this big:
    # smaller ones are a few pixels at the model's input, and labelling them is a coin toss.
    min_visible: float = 0.6
    min_side_px: float = 20.0
    min_box_px: float = 24.0  # grounding / identify boxes: 1 percent step is < 25 % of a side
    # Objects this close to the left/centre/right boundary are not asked about by side.
    side_margin_deg: float = 1.5
    # Audio questions are asked from just before the end of an event to this long after it,
    # so "what did I just hear?" has one answer that the newest clip contains.
    audio_after_s: float = 0.25
    audio_before_s: float = 0.1
    motion_stable_s: float = 0.5  # motion questions only where the label held this long
    # Ask 'where is X?', grounding, identify and refer about every object that qualifies, not
    # one drawn at random: questions about one snapshot share its prompt prefix in training,
    # so more of them are cheap. Off by default (the shipped recipe and the held-out set).
    every_object: bool = False
    # 'what is on my left?' about every side (not one drawn at random): three times the list
    # answers, and as many about crowded sides as the snapshots hold.
    every_side: bool = False

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("DataConfig.seeds: expected at least one seed, found none")
        if self.snapshots_per_episode < 1:
            raise ConfigError(
                f"DataConfig.snapshots_per_episode must be >= 1, found {self.snapshots_per_episode}"
            )
        if not 0.0 <= self.absent_share < 1.0:
            raise ConfigError(
                f"DataConfig.absent_share must be in [0, 1), found {self.absent_share}"
            )


@dataclass(frozen=True)
class Inputs:
    """Preprocessing constants of the three adapters (what the cache depends on)."""

    image_px: int
    image_mode: str
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    audio_rate_hz: int
    audio_clip_samples: int
    imu_rate_hz: float
    imu_window_s: float
    image_antialias: bool = False

    @classmethod
    def of(cls, specs: dict[str, AdapterSpec]) -> Inputs:
        """Read them from the image, audio and imu adapter specs."""
        image, audio, imu = specs["image"].image, specs["audio"].audio, specs["imu"].imu
        if image is None or audio is None or imu is None:
            raise ConfigError("specs: expected image, audio and imu preprocessing sections")
        return cls(
            image.size_px,
            image.resize_mode.value,
            image.mean,
            image.std,
            audio.sample_rate_hz,
            audio.clip_samples,
            imu.rate_hz,
            imu.window_s,
            image.antialias,
        )

    def spans_ns(self) -> dict[Modality, int]:
        """Snapshot spans as `AnswerEngine.spans_ns` asks for them.

        The newest frame (two frame periods at 30 Hz), one audio clip, the IMU window.
        """
        return {
            Modality.IMAGE: int(IMAGE_SPAN_S * NS_PER_S),
            Modality.AUDIO: int(self.audio_clip_samples / self.audio_rate_hz * NS_PER_S),
            Modality.IMU: int(self.imu_window_s * NS_PER_S),
        }


# -- snapshots, the service's way ---------------------------------------------------------
def fill_windows(world: World, index: int, spans_ns: dict[Modality, int]) -> SensorWindows:
    """Windows holding what a subscriber would hold when frame ``index`` arrives.

    Only the data inside the spans before the frame's stamp is added (the rest would be evicted
    or is not needed), so this is cheap at any point of an episode.
    """
    frame = world.frame(index).frame
    stamp = frame.stamp_ns
    windows = SensorWindows(
        image=FrameWindow(WindowConfig(span_ns=spans_ns[Modality.IMAGE], max_items=30)),
        audio=AudioWindow(WindowConfig(span_ns=2 * spans_ns[Modality.AUDIO], max_items=10_000)),
        imu=ImuWindow(WindowConfig(span_ns=2 * spans_ns[Modality.IMU], max_items=100_000)),
    )
    assert windows.image is not None
    assert windows.audio is not None
    assert windows.imu is not None
    windows.image.add(frame)
    rate = world.config.sound.rate_hz
    chunk = world.chunk_frames
    t = stamp - world.start_ns
    last = (t * rate // NS_PER_S) // chunk  # chunks [0, last) end at or before the stamp
    first = max(0, ((t - spans_ns[Modality.AUDIO]) * rate // NS_PER_S) // chunk - 1)
    for i in range(first, min(last, world.audio.size // chunk)):
        windows.audio.add(world.audio_chunk(i))
    t_imu = world.imu_series.t_ns
    lo = int(np.searchsorted(t_imu, t - spans_ns[Modality.IMU], side="left"))
    hi = int(np.searchsorted(t_imu, t, side="right"))
    for i in range(lo, hi):
        windows.imu.add(world.imu_sample(i))
    return windows


def snapshot_at(
    world: World, index: int, inputs: Inputs, spans_ns: dict[Modality, int] | None = None
) -> tuple[Snapshot, FrameTruth]:
    """Return the snapshot a question gets when frame ``index`` arrives, and its truth.

    ``spans_ns`` defaults to ``inputs.spans_ns()`` (the evaluation passes the engine's own).
    """
    spans = spans_ns or inputs.spans_ns()
    windows = fill_windows(world, index, spans)
    stamp = world.start_ns + world.frame_time_ns(index)
    snapshot = windows.snapshot(stamp, spans, max_frames=1)
    return snapshot, world.frame(index).truth


def preprocess(
    snapshot: Snapshot, inputs: Inputs
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Model inputs of a snapshot, as `AdapterSession` prepares them.

    Returns image (3, S, S), audio (clip,) and imu (rows, 6), all float32.
    """
    from mm_ros.core.preprocessing import ResizeMode

    if snapshot.image is None or not snapshot.image.frames:
        raise ConfigError("snapshot: expected a frame in the image view, found none")
    if snapshot.audio is None or snapshot.imu is None:
        raise ConfigError("snapshot: expected audio and imu views")
    image, _ = preprocess_image(
        snapshot.image.frames[-1].rgb(),
        inputs.image_px,
        ResizeMode(inputs.image_mode),
        inputs.image_mean,
        inputs.image_std,
        antialias=inputs.image_antialias,
    )
    audio = prepare_audio(
        snapshot.audio.samples,
        snapshot.audio.rate_hz,
        inputs.audio_rate_hz,
        inputs.audio_clip_samples,
    )
    view = snapshot.imu
    values = np.concatenate([view.linear_acceleration_mps2, view.angular_velocity_rps], axis=1)
    imu = resample_imu(
        view.stamps_ns, values, inputs.imu_rate_hz, inputs.imu_window_s, snapshot.at_ns
    )
    return image, audio, imu


# -- questions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """One question about one snapshot, with its answer and the truth that scores it."""

    snap: int  # row in the dataset's input arrays
    seed: int  # episode
    frame: int  # frame index in the episode (the snapshot is cut when it arrives)
    kind: str  # tasks.Kind value
    task: str  # core.prompt.Task value
    question: str  # without the task identifier
    answer: str
    unseen: bool  # not asked with the training templates (held-out ones, or a user's file)
    truth: dict[str, Any] = field(default_factory=dict)
    # True: the asker gives the task ([grounding] where is X?); False: the service infers it
    # from the words (`core.intent`), as for "find X" or "what is on my left?".
    typed: bool = False


def shown_enough(
    box_px: Sequence[float] | None, visible_fraction: float, config: DataConfig, *, boxed: bool
) -> bool:
    """Return True when training asks about an object shown like this.

    ``boxed=False``: "clear" (asked where it is, named in lists), ``boxed=True``: also asked
    for its box (grounding, identify, refer). Takes plain values so that callers holding a
    ``FrameTruth`` dict (the demo, replays) apply the same rule as the dataset.
    """
    if box_px is None or visible_fraction < config.min_visible:
        return False
    x1, y1, x2, y2 = box_px
    side = max(config.min_box_px, config.min_side_px) if boxed else config.min_side_px
    return bool(min(x2 - x1, y2 - y1) >= side)


def _clear(obj: Any, config: DataConfig) -> bool:
    return bool(obj.in_view) and shown_enough(obj.box_px, obj.visible_fraction, config, boxed=False)


def _boxable(obj: Any, config: DataConfig) -> bool:
    return bool(obj.in_view) and shown_enough(obj.box_px, obj.visible_fraction, config, boxed=True)


def _box(obj: Any) -> tasks.Box:
    box: tasks.Box | None = obj.box_px
    assert box is not None  # only objects in view get here
    return box


def _other_boxes(in_view: list[Any], obj: Any) -> list[dict[str, Any]]:
    """Return the other objects in view with their boxes.

    The evaluation uses them to tell a box on the wrong object from a loose one.
    """
    return [
        {"name": o.name, "box_px": [float(v) for v in o.box_px]}
        for o in in_view
        if o is not obj and o.box_px is not None
    ]


def _near_boundary(obj: Any, half_width_deg: float, margin_deg: float) -> bool:
    return bool(abs(abs(obj.azimuth_deg) - half_width_deg) < margin_deg)


def _chosen(items: list[Any], rng: np.random.Generator, config: DataConfig) -> list[Any]:
    """Every item (``config.every_object``) or one drawn at random; none from an empty list."""
    if config.every_object or not items:
        return list(items)
    return [items[int(rng.integers(len(items)))]]


def _audio_truth(world: World, t_ns: int, config: DataConfig) -> str | None:
    """Return the answer to 'what did I just hear?' at ``t_ns`` (episode time), or None."""
    events = world.events
    for i, event in enumerate(events):
        if event.onset_ns > t_ns:
            break
        start = event.end_ns - round(config.audio_before_s * NS_PER_S)
        stop = event.end_ns + round(config.audio_after_s * NS_PER_S)
        if i + 1 < len(events):
            stop = min(stop, events[i + 1].onset_ns)
        if start <= t_ns < stop:
            return event.sound.value
    return None


TYPED_GROUNDING_SHARE = 0.5  # box questions asked as "[grounding] where is X?" (else plain)


def questions_for(  # noqa: PLR0912, PLR0915 - one block per question kind
    world: World,
    index: int,
    truth: FrameTruth,
    config: DataConfig,
    rng: np.random.Generator,
    *,
    snap: int,
    templates: Mapping[Kind, Sequence[str]] | None = None,
) -> list[Example]:
    """Every question that has a clear answer at frame ``index``.

    ``templates``: a person's own phrasings by kind (`evaluate.load_phrasings`) instead of the
    generator's, asked as written with their slots filled from the truth (``{object}``: the bare
    name, ``{side}``: the side's plain phrase, "on my left"); kinds without templates are not
    asked, and no task is typed (the service reads it from the words).
    """
    held = config.unseen_phrasings or templates is not None
    width, height = world.config.width_px, world.config.height_px
    half = world.config.centre_half_width_deg
    t = world.frame_time_ns(index)
    seed = world.config.seed
    out: list[Example] = []

    def add(
        kind: Kind, question: str, answer: str, *, typed: bool = False, task: str = "",
        **truth_fields: Any,
    ) -> None:  # fmt: skip
        out.append(
            Example(
                snap,
                seed,
                index,
                kind.value,
                task or tasks.TASK_OF[kind].value,
                question,
                answer,
                held,
                truth_fields,
                typed,
            )
        )

    in_view = [o for o in truth.objects if o.in_view]
    names = [o.name for o in in_view]
    clear = [o for o in in_view if _clear(o, config)]

    def called(obj: Any, article: str = "the") -> str:
        """Name the asked object fully, or by shape or colour alone when that is unique."""
        if rng.random() < phrasing.PARTIAL_SHARE:
            partial = phrasing.partial_phrase(obj.name, names, rng, article=article)
            if partial is not None:
                return partial
        return phrasing.object_phrase(obj.name, rng, article=article)

    def side_said(side: str) -> str:
        """Say ``side``: one of many ways, or the plain one for a person's templates."""
        if templates is not None:
            return phrasing.SIDE_PHRASES[side][0]
        return phrasing.side_phrase(side, rng)

    def where_slots(obj: Any) -> dict[str, str]:
        side = ("left", "centre", "right")[int(rng.integers(3))]
        return {
            "object": obj.name,
            "the": called(obj),
            "a": called(obj, "a"),
            "side": side_said(side),
            "sideword": ("left", "right")[int(rng.integers(2))],
        }

    def question(kind: Kind, **slots: str) -> str | None:
        """Ask ``kind``: the generator's question, or one of ``templates`` (None: not asked)."""
        if templates is None:
            return phrasing.ask(kind, rng, held_out=held, **slots).text
        if kind not in templates:
            return None
        options = templates[kind]  # asked as written: only the slots filled
        return phrasing.realise(options[int(rng.integers(len(options)))], slots, rng, plain=True)

    # where is X? -> side
    sided = [o for o in clear if not _near_boundary(o, half, config.side_margin_deg)]
    for obj in _chosen(sided, rng, config):
        q = question(Kind.SIDE, **where_slots(obj))
        if q is not None:
            add(Kind.SIDE, q, tasks.side_answer(obj.name, obj.side.value), name=obj.name,
                side=obj.side.value)  # fmt: skip
    # questions about what is not there: an object out of view, asked where it is or for its box
    if config.absent_share > 0 and rng.random() < config.absent_share:
        absent = [n for n in tasks.OBJECT_NAMES if n not in names]
        name = absent[int(rng.integers(len(absent)))]
        slots = {
            "object": name,
            "the": phrasing.object_phrase(name, rng),
            "a": phrasing.object_phrase(name, rng, article="a"),
            "side": side_said(("left", "centre", "right")[int(rng.integers(3))]),
            "sideword": ("left", "right")[int(rng.integers(2))],
        }
        how = int(rng.integers(3))  # where is X? | [grounding] where is X? | find X
        if templates is not None:  # as a person asks: where is X? or find X, read from the words
            q = question(Kind.ABSENT, **slots)
            how = 2 if q is not None and infer_task(q) is Task.GROUNDING else 0
        else:
            kind_of = Kind.GROUNDING if how == 2 else Kind.ABSENT  # noqa: PLR2004
            q = question(kind_of, **slots)
        task = Task.SPATIAL if how == 0 else Task.GROUNDING
        if q is not None:
            add(Kind.ABSENT, q, tasks.side_answer(name, None), typed=how == 1, task=task.value,
                name=name, side="none", asked=("where", "typed", "plain")[how])  # fmt: skip
    # what is on my left? -> the clear objects there (skipped when one is borderline)
    sides = ["left", "centre", "right"]
    if not config.every_side:
        sides = [sides[int(rng.integers(3))]]
    for side in sides:
        there = [o for o in in_view if o.side.value == side]
        unclear = [
            o
            for o in in_view
            if (o.side.value == side and not _clear(o, config))
            or _near_boundary(o, half, config.side_margin_deg)
        ]
        if unclear:
            continue
        listed = [o.name for o in sorted(there, key=lambda o: -o.azimuth_deg)]
        q = question(Kind.LIST, side=side_said(side))
        if q is not None:
            add(Kind.LIST, q, tasks.listing(listed), side=side, names=listed)
    boxable = [o for o in clear if _boxable(o, config)]
    if boxable:
        for obj in _chosen(boxable, rng, config):
            percent = tasks.percent_box(_box(obj), width, height)
            # typed: "[grounding] where is X?"; a person's templates: their own words only
            typed = rng.random() < TYPED_GROUNDING_SHARE and templates is None
            q = question(Kind.SIDE if typed else Kind.GROUNDING, **where_slots(obj))
            if q is not None:
                add(Kind.GROUNDING, q, tasks.grounded(obj.name, percent), typed=typed,
                    name=obj.name, box_px=[float(v) for v in _box(obj)], percent=list(percent),
                    others=_other_boxes(in_view, obj))  # fmt: skip
        for obj in _chosen(boxable, rng, config):
            percent = tasks.percent_box(_box(obj), width, height)
            q = question(Kind.IDENTIFY, box=tasks.box_markup(percent))
            if q is not None:
                add(Kind.IDENTIFY, q, tasks.identify_answer(obj.name), name=obj.name,
                    box_px=[float(v) for v in _box(obj)])  # fmt: skip
        # refer: an expression that picks exactly one object in view
        refs = []
        for obj in boxable:
            same_colour = [o for o in in_view if o.colour is obj.colour]
            same_shape = [o for o in in_view if o.shape is obj.shape]
            same_side = [o for o in in_view if o.side is obj.side]
            if len(same_colour) == 1:
                refs.append((f"the {obj.colour.label} object", obj))
            if len(same_shape) == 1:
                refs.append((f"the {obj.shape.value}", obj))
            if len(same_side) == 1 and not _near_boundary(obj, half, config.side_margin_deg):
                refs.append((f"the object {tasks.SIDE_TEXT[obj.side.value]}", obj))
        for ref, obj in _chosen(refs, rng, config):
            percent = tasks.percent_box(_box(obj), width, height)
            q = question(Kind.REFER, ref=ref)
            if q is not None:
                add(Kind.REFER, q, tasks.grounded(obj.name, percent), typed=True, name=obj.name,
                    box_px=[float(v) for v in _box(obj)], percent=list(percent),
                    others=_other_boxes(in_view, obj))  # fmt: skip
    sound = _audio_truth(world, t, config)
    if sound is not None:
        other = [s for s in phrasing.HEARD_NAMES if s != sound]
        named = sound if sound in phrasing.HEARD_NAMES else other.pop()
        pair = [named, other[int(rng.integers(len(other)))]]
        first = int(rng.integers(2))
        q = question(Kind.AUDIO, sound1=pair[first], sound2=pair[1 - first])
        if q is not None:
            add(Kind.AUDIO, q, tasks.SOUND_TEXT[Sound(sound)], sound=sound)
    stable = world.trajectory.motion_at(t - round(config.motion_stable_s * NS_PER_S))
    if stable is truth.motion and t >= config.motion_stable_s * NS_PER_S:
        q = question(Kind.MOTION)
        if q is not None:
            add(Kind.MOTION, q, tasks.MOTION_TEXT[truth.motion], motion=truth.motion.value)
    # caption (stage 1): the clear objects with their sides, the sound if clear, the motion
    parts = [f"the {o.name} {tasks.SIDE_TEXT[o.side.value]}" for o in clear]
    sight = "i see " + (" and ".join(parts) if parts else "nothing") + "."
    heard = ""
    if sound is not None:
        heard = " " + tasks.SOUND_TEXT[Sound(sound)]
    caption = sight + heard + " " + tasks.MOTION_TEXT[truth.motion]
    q = question(Kind.CAPTION)
    if q is not None:
        add(Kind.CAPTION, q, caption, typed=True)
    return out


def snapshot_objects(truth: Any, width_px: int, height_px: int) -> list[dict[str, Any]]:
    """Return the objects visible in a frame, nearest first, as JSON-ready dicts."""
    seen = [o for o in truth.objects if o.in_view and o.box_px is not None]
    out = []
    for obj in sorted(seen, key=lambda o: o.distance_m):
        out.append(
            {
                "colour": obj.colour.label,
                "shape": obj.shape.value,
                "side": obj.side.value,
                "box_px": [float(v) for v in obj.box_px],
                "percent": list(tasks.percent_box(obj.box_px, width_px, height_px)),
            }
        )
    return out


def snapshot_frames(
    world: World, count: int, rng: np.random.Generator, config: DataConfig
) -> list[int]:
    """Frame indices to cut snapshots at: half near the ends of sound events, half anywhere."""
    fps = world.config.fps
    first = math.ceil(fps * 1.0)  # a full second of audio and IMU behind the first snapshot
    every = np.arange(first, world.frame_count)
    times = every * NS_PER_S // fps
    audio_ok = np.array([_audio_truth(world, int(t), config) is not None for t in times])
    near = every[audio_ok]
    half = min(count // 2, near.size)
    chosen = list(rng.choice(near, size=half, replace=False)) if half else []
    rest = np.setdiff1d(every, chosen)
    chosen += list(rng.choice(rest, size=min(count - half, rest.size), replace=False))
    return sorted(int(i) for i in chosen)


# -- the dataset ---------------------------------------------------------------------------
@dataclass
class Dataset:
    """Model inputs per snapshot and the examples that refer to them."""

    images: NDArray[np.float16]  # (N, 3, S, S) normalised, as preprocess_image returns
    audio: NDArray[np.float16]  # (N, clip) samples in [-1, 1]
    imu: NDArray[np.float32]  # (N, rows, 6) raw units
    examples: list[Example]
    image_size: tuple[int, int]  # source width, height
    # per snapshot: the visible objects, nearest first (`snapshot_objects`)
    objects: list[list[dict[str, Any]]] = field(default_factory=list)

    def of_kind(self, *kinds: Kind) -> list[Example]:
        """Examples of the given kinds."""
        wanted = {k.value for k in kinds}
        return [e for e in self.examples if e.kind in wanted]


def world_config(seed: int, config: DataConfig) -> WorldConfig:
    """Return the world of episode ``seed`` (default sensors, ``config.duration_s`` long)."""
    return WorldConfig(seed=seed, duration_s=config.duration_s)


def examples_only(
    config: DataConfig, templates: Mapping[Kind, Sequence[str]] | None = None
) -> list[Example]:
    """Return the questions `build_dataset` makes for ``config``, without model inputs.

    ``templates``: a person's own phrasings instead of the generator's (`questions_for`).
    """
    examples: list[Example] = []
    for seed in config.seeds:
        world = World(world_config(seed, config))
        rng = np.random.default_rng([seed, 7, int(config.unseen_phrasings)])
        for index in snapshot_frames(world, config.snapshots_per_episode, rng, config):
            truth = world.frame(index).truth
            examples.extend(
                questions_for(world, index, truth, config, rng, snap=-1, templates=templates)
            )
    return examples


def build_dataset(config: DataConfig, inputs: Inputs, progress: bool = False) -> Dataset:
    """Generate every episode of ``config`` and its questions (deterministic per seed)."""
    images: list[NDArray[np.float16]] = []
    audio: list[NDArray[np.float16]] = []
    imu: list[NDArray[np.float32]] = []
    examples: list[Example] = []
    objects: list[list[dict[str, Any]]] = []
    seeds: Any = config.seeds
    if progress:
        from tqdm import tqdm

        seeds = tqdm(config.seeds, desc="episodes", unit="ep")
    size = (0, 0)
    for seed in seeds:
        world = World(world_config(seed, config))
        size = (world.config.width_px, world.config.height_px)
        rng = np.random.default_rng([seed, 7, int(config.unseen_phrasings)])
        for index in snapshot_frames(world, config.snapshots_per_episode, rng, config):
            snapshot, truth = snapshot_at(world, index, inputs)
            image, clip, window = preprocess(snapshot, inputs)
            snap = len(images)
            images.append(image.astype(np.float16))
            audio.append(clip.astype(np.float16))
            imu.append(window)
            objects.append(snapshot_objects(truth, *size))
            examples.extend(questions_for(world, index, truth, config, rng, snap=snap))
    return Dataset(np.stack(images), np.stack(audio), np.stack(imu), examples, size, objects)


def cache_key(config: DataConfig, inputs: Inputs) -> str:
    """Short hash of everything the cached arrays depend on."""
    text = json.dumps([CACHE_VERSION, asdict(config), asdict(inputs)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_build(
    config: DataConfig, inputs: Inputs, cache_dir: Path | None, progress: bool = False
) -> Dataset:
    """Return the dataset from ``cache_dir`` (built and written there on a miss)."""
    if cache_dir is None:
        return build_dataset(config, inputs, progress)
    key = cache_key(config, inputs)
    arrays, meta = cache_dir / f"data-{key}.npz", cache_dir / f"data-{key}.json"
    if arrays.is_file() and meta.is_file():
        with np.load(arrays, allow_pickle=False) as data:
            document = json.loads(meta.read_text())
            return Dataset(
                data["images"],
                data["audio"],
                data["imu"],
                [Example(**e) for e in document["examples"]],
                (int(document["image_size"][0]), int(document["image_size"][1])),
                document["objects"],
            )
    dataset = build_dataset(config, inputs, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(arrays, images=dataset.images, audio=dataset.audio, imu=dataset.imu)
    meta.write_text(
        json.dumps(
            {
                "examples": [asdict(e) for e in dataset.examples],
                "image_size": list(dataset.image_size),
                "objects": dataset.objects,
            }
        )
    )
    return dataset
