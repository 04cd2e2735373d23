"""Model-service diagnostics entries reach /diagnostics as a DiagnosticArray (zenoh bus)."""

from __future__ import annotations

import time

from mm_ros.bus import QoS
from mm_ros.bus.zenoh_bus import wait_until
from mm_ros.core.diagnostics import ModelFigures, QueueFigures, model_service_entries
from mm_ros.nodes.diagnostics import DiagnosticsPublisher


def test_entries_published_with_levels_and_values(make_zenoh) -> None:
    node = make_zenoh("model_service", ["--ros-args", "-p", "use_sim_time:=true"])
    listener = make_zenoh("listener")
    got: list = []
    listener.create_subscription(
        "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", got.append, QoS(depth=10)
    )
    publisher = DiagnosticsPublisher(node)
    wait_until(lambda: node.count_subscribers("/diagnostics") > 0, 10, "the listener")
    entries = model_service_entries(
        node.node_name,
        model=ModelFigures("mm-tiny@0000", random_weights=True),
        adapters={"image": {"runtime": "torch", "skipped.onnxruntime": "no model.onnx"}},
        queue=QueueFigures(8, 8, 0.2),
    )
    deadline = time.monotonic() + 10
    while not got:
        assert time.monotonic() < deadline
        publisher.publish(entries)
        time.sleep(0.05)
    array = got[0]
    assert (array.header.stamp.sec, array.header.stamp.nanosec) == (0, 0)  # sim time, no /clock
    status = {s.name: s for s in array.status}
    assert list(status) == [e.name for e in entries]
    levels = {name: int(s.level) for name, s in status.items()}
    assert levels == {
        "model_service: model": 1,
        "model_service: adapter image": 1,
        "model_service: queue": 2,
        "model_service: latency": 0,
    }
    image = status["model_service: adapter image"]
    assert {kv.key: kv.value for kv in image.values}["skipped.onnxruntime"] == "no model.onnx"
    assert image.hardware_id == "mm-tiny@0000"
