"""``model_service``: answer questions about what the sensors saw, heard and felt.

Serves the ``~/ask`` action (mm_ros/action/Ask: streamed partial text, cancel, deadline) and a
``~/question`` (std_msgs/String) → ``~/answer`` (mm_ros/msg/Answer) pair; publishes every answer
on ``~/answer``, its boxes on ``~/detections`` (vision_msgs/Detection2DArray, header = the source
image's) and a drawing on ``~/annotated``; reports on /diagnostics. Adapters run in this
process on the sensor windows, or remotely (``remote_modalities``: TokenEmbeddings on
``embeddings/<modality>`` from camera_adapter / audio_adapter / imu_adapter).
With no parameters it runs the embedded default model (mm-tiny).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_ros.bus.naming import RELIABLE, SENSOR_DATA
from mm_ros.core.errors import QueryError
from mm_ros.nodes import convert
from mm_ros.nodes.diagnostics import DiagnosticsPublisher, DroppedInput
from mm_ros.nodes.lifecycle import LifecycleNode
from mm_ros.nodes.model_service import (
    ModelServiceConfig,
    ServiceCore,
    query_from_goal,
)
from mm_ros.nodes.params import declare_config
from mm_ros.nodes.runner import run_node
from mm_ros.nodes.sensor_inputs import SensorInputs

if TYPE_CHECKING:
    from mm_ros.bus.protocol import Bus, ServerGoal
    from mm_ros.core.answers import AnswerValue
    from mm_ros.core.lifecycle import State

DESCRIPTION = __doc__ or ""
log = logging.getLogger("mm_ros.model_service")
NS = 1_000_000_000
OUTPUT_TYPES = ("mm_ros/msg/Answer", "vision_msgs/msg/Detection2DArray", "sensor_msgs/msg/Image")


@dataclass
class _Outputs:
    answer: Any
    detections: Any
    annotated: Any


class ModelServiceNode(LifecycleNode):
    """Sensor intake + one model + a bounded question queue, wired to the bus (managed node).

    configure loads the model, activate starts answering, deactivate stops answering (waiting
    questions end with an error), cleanup releases the model. With ``autostart`` (default) the
    runner configures and activates at start.
    """

    name = "mm"
    description = DESCRIPTION
    Config = ModelServiceConfig

    def __init__(self, bus: Bus) -> None:
        self.config = declare_config(bus, ModelServiceConfig, self._reconfigure)
        super().__init__(bus, autostart=self.config.autostart)
        remote = self.config.remote()
        local = tuple(m for m in ("image", "imu", "audio") if m not in remote)
        self.inputs = SensorInputs(bus, self.config, bus.drops, local)  # raw data stays local
        self.core = ServiceCore(self.config, self.inputs, log, bus.now_ns)  # loads nothing yet
        self._make = {t: bus.msg(t) for t in OUTPUT_TYPES}
        self.outputs = _Outputs(
            bus.create_publisher("~/answer", "mm_ros/msg/Answer", RELIABLE),
            bus.create_publisher("~/detections", "vision_msgs/msg/Detection2DArray", RELIABLE),
            bus.create_publisher("~/annotated", "sensor_msgs/msg/Image", SENSOR_DATA),
        )
        self._diagnostics = DiagnosticsPublisher(bus, self.config.diagnostics_topic)
        self._dropped = DroppedInput(bus.node_name, bus.drops)
        for modality in self.core.remote_modalities:
            bus.create_subscription(
                f"embeddings/{modality}",
                "mm_ros/msg/TokenEmbeddings",
                self.core.on_embeddings,
                SENSOR_DATA,
            )
        bus.create_subscription("~/question", "std_msgs/msg/String", self._on_question, RELIABLE)
        bus.create_action_server("~/ask", "mm_ros/action/Ask", self._execute)
        self._timer = bus.create_timer(self.config.diagnostics_period_s, self._report)

    def _reconfigure(self, config: ModelServiceConfig) -> None:
        """Take a live parameter (``ros2 param set``) for the questions asked from now on."""
        self.core.reconfigure(config)
        self.config = config

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, previous: State) -> None:
        """Load the model and its adapters."""
        self.core.configure()
        log.info("model_service configured: %s", self.core.describe())

    def on_activate(self, previous: State) -> None:
        """Start answering."""
        self.core.activate()
        log.info("model_service ready: answering on %s/ask", self.bus.fully_qualified_name)

    def on_deactivate(self, previous: State) -> None:
        """Stop answering; questions get an error until activated again."""
        self.core.deactivate()

    def on_cleanup(self, previous: State) -> None:
        """Release the model."""
        self.core.cleanup()

    def on_shutdown(self, previous: State) -> None:
        """Release everything."""
        self.core.close()

    def on_error(self, previous: State) -> None:
        """Drop whatever a failed transition left half loaded."""
        self.core.close()

    # -- questions ---------------------------------------------------------------------------

    def _publish(self, answer: AnswerValue) -> dict[str, Any]:
        fields = convert.answer(answer)
        self.outputs.answer.publish(self._make["mm_ros/msg/Answer"](**fields))
        if answer.image is not None:
            self.outputs.detections.publish(
                self._make["vision_msgs/msg/Detection2DArray"](**fields["detections"])
            )
        if self.config.publish_annotated:
            drawn = self.core.annotated(answer)
            if drawn is not None:
                self.outputs.annotated.publish(self._make["sensor_msgs/msg/Image"](**drawn))
        return fields

    def _on_question(self, message: Any) -> None:
        """Queue a plain-topic question; its answer (or error) goes out on ``~/answer``."""
        query = query_from_goal(message.data, self.config)
        try:
            self.core.submit(query, None, on_done=self._publish)
        except QueryError as err:
            self._publish(self.core.failure(query, str(err)))

    def _execute(self, goal: ServerGoal) -> Any:
        """Run one Ask goal: feedback while generating, exactly one result."""

        def feedback(text: str, tokens: int, stage: str) -> None:
            goal.publish_feedback(
                {"partial_text": text, "generated_tokens": tokens, "stage": stage}
            )

        query = query_from_goal(goal.request, self.config)
        answer = self.core.ask(query, feedback, lambda: goal.is_cancel_requested)
        fields = self._publish(answer)
        if answer.error:
            (goal.canceled if goal.is_cancel_requested else goal.abort)()
        return {"answer": fields}

    def _report(self) -> None:
        from mm_ros.engines.device import gpu_memory

        device = self.core.lm_device()
        gpu = (
            gpu_memory(device if ":" in device else "cuda:0") if device.startswith("cuda") else None
        )
        entries = self.core.diagnostics(self.bus.node_name, gpu)
        self._diagnostics.publish([*entries, self._dropped.entry()])

    def close(self) -> None:
        """Answer every waiting question with a shutdown error, then release the model."""
        self._timer.cancel()
        super().close()
        self.core.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``model_service``."""
    return run_node(ModelServiceNode, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
