"""What the model service returns: answer text, detections in source pixels, bearings, timing.

Plain values (no ROS types): the node converts an `AnswerValue` into ``mm_ros/msg/Answer`` and
``vision_msgs/Detection2DArray``; tests and the evaluation harness read it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mm_ros.core.sensors import Side

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in source-image pixels

# Where a question is, as the Ask action's feedback ``stage`` says it (action/Ask.action)
QUEUED = "queued"  # accepted, waiting for a free row of the decode batch
ENCODE = "encode"  # cutting the snapshot and encoding the modality blocks
PREFILL = "prefill"  # its prompt is being prefilled (it joins the batch at this step)
GENERATING = "generating"  # one feedback per new token, with the text so far
STAGES = (QUEUED, ENCODE, PREFILL, GENERATING)


@dataclass(frozen=True)
class Detection:
    """One box the model wrote, mapped to the source image."""

    label: str  # phrase from the box markup, e.g. "red cube" ("" when the model gave none)
    box_px: Box  # source-image pixels, x1 <= x2, y1 <= y2, clamped to the image
    score: float = 1.0  # generative models give no score; 1.0 marks "the model said so"


@dataclass(frozen=True)
class ObjectBearing:
    """Direction of a detection (or of a non-box statement) from the camera's optical axis."""

    label: str
    detection_index: int  # index into AnswerValue.detections; -1 when not from a box
    azimuth_deg: float  # REP 103: + = left
    elevation_deg: float  # + = up
    side: Side | None  # None = unknown (no camera geometry and no image width)


@dataclass(frozen=True)
class ImageRef:
    """The source image an answer's boxes live in (its header and size)."""

    stamp_ns: int
    frame_id: str
    width: int
    height: int


@dataclass(frozen=True)
class AnswerValue:
    """Exactly one of these ends every query: an answer, or ``error`` saying why there is none."""

    question: str
    task: str  # the task used: given, from a [task] prefix, or inferred (`core.intent`)
    text: str = ""  # answer without box markup
    raw_text: str = ""  # exactly what the language model wrote
    detections: tuple[Detection, ...] = ()
    bearings: tuple[ObjectBearing, ...] = ()
    image: ImageRef | None = None  # the image the detections refer to
    modalities: tuple[str, ...] = ()
    stamp_ns: int = 0  # newest sensor sample used
    frame_id: str = ""
    window_start_ns: int = 0  # oldest sensor sample used
    latency_s: tuple[tuple[str, float], ...] = ()  # (stage, seconds) in the order they ran
    prompt_tokens: int = 0
    generated_tokens: int = 0
    model_id: str = ""
    error: str = ""  # empty on success
    rejected_boxes: tuple[str, ...] = field(default=())  # box markup the parser refused, and why
    warnings: tuple[str, ...] = ()  # modalities with stale or no data (core.freshness)
    # question words the model's tokenizer does not know (never learnt; pieces or <unk>)
    unknown_words: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the query produced an answer."""
        return not self.error
