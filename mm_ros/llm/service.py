"""Answer one question about one sensor snapshot: encode, assemble, generate, parse, ground.

`AnswerEngine` is everything the model service does between "a question was accepted" and "an
answer exists", with no bus: the node feeds it snapshots cut from its sensor windows (or token
blocks received from remote adapter nodes) and converts the `AnswerValue` it returns. The
evaluation harness drives the very same engine, so what `mm-ros eval` measures is what the
robot gets.

Two caches make the second question about one snapshot cheap: encoded blocks (keyed by the
modality and the stamps of the data) and the KV prefix (system text + modality blocks).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.core.answers import (
    ENCODE,
    GENERATING,
    PREFILL,
    AnswerValue,
    Detection,
    ImageRef,
    ObjectBearing,
)
from mm_ros.core.audio import resample
from mm_ros.core.boxes import parse_boxes, streamed_text
from mm_ros.core.errors import ConfigError, QueryError, TokenSpaceMismatchError
from mm_ros.core.freshness import freshness_warnings
from mm_ros.core.grounding import bearings, source_detections
from mm_ros.core.intent import resolve_task
from mm_ros.core.scheduler import FAILED, stop_message
from mm_ros.core.sensors import Modality as SensorModality
from mm_ros.llm.assembly import assemble
from mm_ros.llm.batching import DecodeLoop
from mm_ros.llm.generation import GenerationConfig, Generator
from mm_ros.llm.prefix_cache import PrefixCache
from mm_ros.llm.tokens import VocabularyCheck

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from numpy.typing import NDArray

    from mm_ros.core.preprocessing import ImageTransform
    from mm_ros.core.sensors import CameraModel
    from mm_ros.core.windows import Snapshot
    from mm_ros.engines.session import AdapterSession, Encoded
    from mm_ros.llm.backends.base import LoadedBackend
    from mm_ros.llm.batching import DecodeStats

NS = 1_000_000_000
SENSOR_OF = {  # prompt modality → the sensor window it is cut from
    "image": SensorModality.IMAGE,
    "video": SensorModality.IMAGE,
    "audio": SensorModality.AUDIO,
    "imu": SensorModality.IMU,
}


@dataclass(frozen=True)
class Query:
    """One question, as the Ask action's goal carries it (0 / empty = service default)."""

    question: str
    task: str = ""  # "" = the question's [task] prefix, else inferred from its words
    modalities: tuple[str, ...] = ()  # () = every modality with an adapter and data
    at_ns: int | None = None  # answer about the world at this stamp; None = newest data
    window_s: float = 0.0  # audio / IMU history; 0 = what each adapter was trained on
    timeout_s: float = 0.0
    max_new_tokens: int = 0


@dataclass(frozen=True)
class ServiceSettings:
    """How the engine answers (the node builds it from ROS parameters)."""

    generation: GenerationConfig = field(default_factory=GenerationConfig)
    # |azimuth| within this many degrees of the optical axis is "centre" (a quarter of a 77 deg
    # field of view at the default 10 deg): wide enough that "in front of me" is stable.
    centre_half_width_deg: float = 10.0
    # Data older than this (before the question's stamp, or now) is named in the answer's
    # warnings: a stopped camera or adapter node must not pass for a live one.
    stale_after_s: float = 1.0
    prefix_cache_entries: int = 4  # snapshots whose prefill is kept (a few askers at once)
    block_cache_entries: int = 16  # encoded modality blocks kept (per modality and stamp)
    max_batch: int = 8  # questions decoded together at most (the node's max_batch parameter)

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, found {self.max_batch}")
        if not 0.0 <= self.centre_half_width_deg < 90.0:  # noqa: PLR2004 - degrees
            raise ConfigError(
                f"centre_half_width_deg must be in [0, 90), found {self.centre_half_width_deg}"
            )
        if not self.stale_after_s > 0:
            raise ConfigError(f"stale_after_s must be > 0, found {self.stale_after_s}")
        if self.prefix_cache_entries < 0 or self.block_cache_entries < 0:
            raise ConfigError("cache sizes must be >= 0")


@dataclass(frozen=True)
class Block:
    """Tokens of one modality ready to splice into a prompt, and where they came from."""

    modality: str
    tokens: NDArray[Any]  # (N, d_model)
    stamp_ns: int  # newest sample encoded
    start_ns: int  # oldest sample encoded
    frame_id: str
    source: str  # runtime that encoded it, or "remote <adapter id>"
    encode_s: float = 0.0  # 0 when it came from a cache or a remote adapter
    transform: ImageTransform | None = None  # images: model input → source pixels
    image: ImageRef | None = None
    pixels: NDArray[np.uint8] | None = None  # images: the (H, W, 3) rgb8 source, for drawing


def _failure(query: Query, message: str, model_id: str) -> AnswerValue:
    return AnswerValue(question=query.question, task=query.task, model_id=model_id, error=message)


class AnswerEngine:
    """Encode → assemble → generate → parse → ground, for one loaded backend.

    ``answer`` may be called from many threads at once: encoding runs one block at a time (a
    question waits for a block another is encoding, then finds it cached), and generation goes
    through one :class:`~mm_ros.llm.batching.DecodeLoop`, where the questions share each decode
    step.
    """

    def __init__(self, backend: LoadedBackend, settings: ServiceSettings | None = None) -> None:
        self.backend = backend
        self.settings = settings or ServiceSettings()
        entries = self.settings.prefix_cache_entries
        self._prefix_cache = PrefixCache(entries) if entries else None  # 0 = no prefix cache
        self.generator = Generator(backend, self._prefix_cache, self.settings.max_batch)
        self.decoder = DecodeLoop(self.generator, f"decode {backend.model_id}")
        self._blocks: collections.OrderedDict[tuple[Any, ...], Block] = collections.OrderedDict()
        # one adapter run at a time (a TensorRT context serves one thread), and the block cache
        self._lock = threading.Lock()
        self.vocabulary = VocabularyCheck(backend.tokenizer)

    @property
    def model_id(self) -> str:
        """The backend's model id."""
        return self.backend.model_id

    def modalities(self) -> tuple[str, ...]:
        """Modalities this model has adapters for, in prompt order."""
        order = self.backend.prompt.modality_order
        return tuple(m for m in order if m in self.backend.sessions)

    def spans_ns(self, query: Query) -> dict[SensorModality, int]:
        """How much history of each sensor the query needs (what the snapshot must cover)."""
        spans: dict[SensorModality, int] = {}
        for modality in self._wanted(query):
            spec = self.backend.sessions[modality].spec
            span_s = 1.0 / 30.0 * max(spec.video_frames, 1) * 2.0  # a frame or a clip, plus slack
            if spec.audio is not None:
                span_s = query.window_s or spec.audio.clip_s
            if spec.imu is not None:
                span_s = query.window_s or spec.imu.window_s
            spans[SENSOR_OF[modality]] = max(int(span_s * NS), 1)
        return spans

    def _wanted(self, query: Query) -> tuple[str, ...]:
        known = self.modalities()
        if not query.modalities:
            return known
        missing = [m for m in query.modalities if m not in known]
        if missing:
            raise QueryError(
                FAILED,
                f"no adapter for {', '.join(missing)}: this model ({self.model_id}) has "
                f"{', '.join(known) or 'none'}",
            )
        return tuple(m for m in known if m in query.modalities)

    # -- encoding ---------------------------------------------------------------------------

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Block]) -> Block:
        with self._lock:  # held while encoding: a second asker waits, then hits
            hit = self._blocks.get(key)
            if hit is not None:
                self._blocks.move_to_end(key)
                return replace(hit, encode_s=0.0)
            block = make()
            self._blocks[key] = block
            while len(self._blocks) > self.settings.block_cache_entries:
                self._blocks.popitem(last=False)
        return block

    def _encode(self, modality: str, snapshot: Snapshot) -> Block | None:
        found = block_source(modality, self.backend.sessions[modality], snapshot)
        return None if found is None else self._cached(*found)

    def check_remote(self, modality: str, adapter_id: str, checkpoint_sha256: str) -> None:
        """Refuse tokens from an adapter other than this model's (different token spaces)."""
        identity = self.backend.identities.get(modality)
        if identity is None:
            raise TokenSpaceMismatchError(
                f"{modality} embeddings received, but model {self.model_id} has no {modality} "
                "adapter"
            )
        if (adapter_id, checkpoint_sha256) != (identity.adapter_id, identity.checkpoint_sha256):
            raise TokenSpaceMismatchError(
                f"{modality} embeddings from adapter {adapter_id!r} (weights "
                f"{checkpoint_sha256[:12]}) do not match this model's {identity.adapter_id!r} "
                f"(weights {identity.checkpoint_sha256[:12]}): different token spaces never mix"
            )

    # -- answering --------------------------------------------------------------------------

    def answer(
        self,
        query: Query,
        snapshot: Snapshot | None = None,
        camera: CameraModel | None = None,
        *,
        blocks: Mapping[str, Block] | None = None,
        on_partial: Callable[[str, int, str], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
        now_ns: int | None = None,
    ) -> AnswerValue:
        """Answer ``query`` from ``snapshot`` (and/or ready ``blocks``); never raises for a query.

        ``on_partial(text, generated_tokens, stage)`` streams; ``should_stop()`` returning
        ``cancelled`` / ``deadline`` ends generation early with an error answer. With
        ``now_ns`` (the node's clock), modalities with data older than ``stale_after_s`` before
        the question's stamp (or now), or with none, are named in the answer's ``warnings``.
        """
        started = time.perf_counter()
        try:
            return self._answer(
                query, snapshot, camera, blocks, on_partial, should_stop, started, now_ns
            )
        except (QueryError, ConfigError, TokenSpaceMismatchError) as err:
            return _failure(query, str(err), self.model_id)

    def _answer(  # noqa: PLR0917 - internal: the arguments of answer() in order
        self,
        query: Query,
        snapshot: Snapshot | None,
        camera: CameraModel | None,
        given: Mapping[str, Block] | None,
        on_partial: Callable[[str, int, str], None] | None,
        should_stop: Callable[[], str | None] | None,
        started: float,
        now_ns: int | None,
    ) -> AnswerValue:
        choice = resolve_task(query.question, query.task, self.backend.prompt.tasks)
        task, text = choice.task, choice.text
        if not text:
            raise ConfigError("empty question: expected some text after the task identifier")
        if on_partial is not None:
            on_partial("", 0, ENCODE)
        blocks = dict(given or {})
        if snapshot is not None:
            for modality in self._wanted(query):
                block = blocks.get(modality) or self._encode(modality, snapshot)
                if block is not None:
                    blocks[modality] = block
        order = [m for m in self.backend.prompt.modality_order if m in blocks]
        if query.modalities:
            absent = [m for m in query.modalities if m not in blocks]
            if absent:
                raise QueryError(FAILED, f"no {', '.join(absent)} data to answer from")
        latency = [(f"encode/{m}", blocks[m].encode_s) for m in order]
        prompt = assemble(self.backend, task, text, {m: blocks[m].tokens for m in order})
        prefix_key = tuple((m, blocks[m].stamp_ns, blocks[m].start_ns) for m in order)
        config = self.settings.generation
        if query.max_new_tokens:
            config = replace(config, max_new_tokens=query.max_new_tokens)
        image_block = blocks.get("image")
        size = self._input_size()

        def stream(raw: str, count: int) -> None:
            if on_partial is not None:
                fmt, scale = self.backend.box_format, self.backend.box_scale
                on_partial(streamed_text(raw, fmt, scale, size=size), count, GENERATING)

        def prefilling() -> None:
            if on_partial is not None:
                on_partial("", 0, PREFILL)

        t_gen = time.perf_counter()
        generated = self.decoder.generate(
            prompt,
            config,
            prefix_key=prefix_key,
            on_text=stream,
            should_stop=should_stop,
            on_prefill=prefilling,
        )
        latency += [
            ("prefill", generated.prefill_s),
            ("first_token", t_gen - started + generated.first_token_s),
            ("generate", generated.generate_s),
        ]
        parsed = parse_boxes(
            generated.text,
            self.backend.box_format,
            self.backend.box_scale,
            input_width=size,
            input_height=size,
        )
        detections: tuple[Detection, ...] = ()
        found: tuple[ObjectBearing, ...] = ()
        rejected = parsed.rejected
        if image_block is not None and image_block.image is not None:
            detections, rejected = source_detections(
                parsed, image_block.transform, image_block.image
            )
            found = bearings(
                detections, image_block.image, camera, self.settings.centre_half_width_deg
            )
        newest = max(blocks.values(), key=lambda b: b.stamp_ns, default=None)
        error = ""
        if generated.stop_reason in {"cancelled", "deadline"}:
            error = stop_message(
                generated.stop_reason, query.timeout_s, time.perf_counter() - started
            )
        latency.append(("total", time.perf_counter() - started))
        warnings: tuple[str, ...] = ()
        if now_ns is not None:
            warnings = freshness_warnings(
                query.modalities or self.modalities(),
                {m: blocks[m].stamp_ns for m in order},
                query.at_ns if query.at_ns is not None else now_ns,
                self.settings.stale_after_s,
                {m: b.source for m, b in blocks.items() if b.source.startswith("remote")},
            )
        return AnswerValue(
            question=query.question,
            task=task.value,
            text=parsed.text,
            raw_text=generated.text,
            detections=detections,
            bearings=found,
            image=image_block.image if image_block is not None else None,
            modalities=tuple(order),
            stamp_ns=newest.stamp_ns if newest is not None else 0,
            frame_id=newest.frame_id if newest is not None else "",
            window_start_ns=min((b.start_ns for b in blocks.values()), default=0),
            latency_s=tuple(latency),
            prompt_tokens=generated.prompt_tokens,
            generated_tokens=len(generated.token_ids),
            model_id=self.model_id,
            error=error,
            rejected_boxes=rejected,
            warnings=warnings,
            unknown_words=self.vocabulary(text),
        )

    def _input_size(self) -> int:
        session = self.backend.sessions.get("image")
        if session is None or session.spec.image is None:
            return 1
        return session.spec.image.size_px

    def prepare(self) -> str:
        """Build the decode step now, not on the first question; return its description."""
        return self.generator.prepare().description

    def decode_stats(self) -> DecodeStats:
        """Batch size now and the decode counters (for /diagnostics)."""
        return self.decoder.stats()

    def close(self) -> None:
        """End questions still decoding (shutdown error), release the backend's runtimes."""
        self.decoder.close()
        self.backend.close()


def block_source(
    modality: str, session: AdapterSession, snapshot: Snapshot
) -> tuple[tuple[Any, ...], Callable[[], Block]] | None:
    """Return (cache key, encode function) for ``modality`` in ``snapshot``; None without data.

    The key names the data (modality + stamps), so equal keys mean equal tokens: the engine
    caches on it and remote adapter nodes skip data they already sent.
    """
    if modality == "image" and snapshot.image is not None and snapshot.image.frames:
        frame = snapshot.image.frames[-1]
        return (modality, frame.stamp_ns, frame.frame_id), lambda: _image_block(session, frame)
    if modality == "audio" and snapshot.audio is not None and snapshot.audio.coverage > 0:
        view = snapshot.audio

        def audio() -> Block:
            t0 = time.perf_counter()
            samples, rate = view.samples, view.rate_hz
            wanted = session.spec.audio.sample_rate_hz if session.spec.audio else rate
            if rate != wanted:  # a 44.1 / 48 kHz microphone, or a stream whose rate changed
                samples, rate = resample(samples, rate, wanted), wanted
            encoded = session.encode_audio(samples, rate)
            return _block(encoded, view.at_ns, view.start_ns, "", time.perf_counter() - t0)

        return (modality, view.start_ns, view.at_ns, view.rate_hz), audio
    if modality == "imu" and snapshot.imu is not None and len(snapshot.imu.stamps_ns):
        iv = snapshot.imu
        first, newest = int(iv.stamps_ns[0]), int(iv.stamps_ns[-1])

        def imu() -> Block:
            values = np.concatenate([iv.linear_acceleration_mps2, iv.angular_velocity_rps], 1)
            t0 = time.perf_counter()
            encoded = session.encode_imu(iv.stamps_ns, values, iv.at_ns)
            return _block(encoded, newest, first, "", time.perf_counter() - t0)

        return (modality, first, newest, iv.at_ns), imu
    return None


def _block(encoded: Encoded, stamp_ns: int, start_ns: int, frame_id: str, encode_s: float) -> Block:
    return Block(
        encoded.modality.value,
        encoded.tokens,
        stamp_ns,
        start_ns,
        frame_id,
        encoded.runtime,
        encode_s,
    )


def _image_block(session: AdapterSession, frame: Any) -> Block:
    rgb = np.ascontiguousarray(frame.rgb())
    t0 = time.perf_counter()
    encoded = session.encode_image(rgb)
    elapsed = time.perf_counter() - t0
    image = ImageRef(frame.stamp_ns, frame.frame_id, frame.width, frame.height)
    return replace(
        _block(encoded, frame.stamp_ns, frame.stamp_ns, frame.frame_id, elapsed),
        transform=encoded.transforms[0] if encoded.transforms else None,
        image=image,
        pixels=rgb,
    )
