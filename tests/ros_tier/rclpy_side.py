"""Runs INSIDE the ROS 2 tier (rclpy + the colcon-built mm_ros): the real ROS side of tests.

python rclpy_side.py cdr            JSON lines in: {"type", "values", "ours_hex"}
python rclpy_side.py ask-server     serves mm_ros/action/Ask on /mm_ros_test/ask
python rclpy_side.py ask-client Q   sends one goal, prints feedback and result as JSON
python rclpy_side.py whereami       where the imported modules live
"""

from __future__ import annotations

import array
import contextlib
import importlib
import json
import sys
import time

import numpy as np

ACTION_PARTS = {
    "SendGoal_Request": ("Impl", "SendGoalService", "Request"),
    "SendGoal_Response": ("Impl", "SendGoalService", "Response"),
    "GetResult_Request": ("Impl", "GetResultService", "Request"),
    "GetResult_Response": ("Impl", "GetResultService", "Response"),
    "FeedbackMessage": ("Impl", "FeedbackMessage"),
    "Goal": ("Goal",), "Result": ("Result",), "Feedback": ("Feedback",),
}  # fmt: skip


def message_class(typename: str):
    """Class of ``pkg/kind/Name`` or of rclpy's field-type form ``pkg/Name``."""
    if typename.count("/") == 1:  # rclpy writes nested types as pkg/Name, action parts too
        pkg, name = typename.split("/")
        kind = "msg" if hasattr(importlib.import_module(f"{pkg}.msg"), name) else "action"
    else:
        pkg, kind, name = typename.split("/")
    module = importlib.import_module(f"{pkg}.{kind}")
    if kind != "action" or hasattr(module, name):
        return getattr(module, name)
    base, _, part = name.partition("_")
    obj = getattr(module, base)
    for attr in ACTION_PARTS[part]:
        obj = getattr(obj, attr)
    return obj


def inner_type(spec: str) -> str:
    if spec.startswith("sequence<"):
        spec = spec[len("sequence<") :].rsplit(">", 1)[0].split(",", maxsplit=1)[0]
    return spec.split("[")[0]


def build(cls, values: dict):
    msg = cls()
    types = cls.get_fields_and_field_types()
    for name, value in values.items():
        spec = types[name]
        inner = inner_type(spec)
        nested = "/" in inner
        if nested and isinstance(value, dict):
            setattr(msg, name, build(message_class(inner), value))
        elif nested:
            setattr(msg, name, [build(message_class(inner), v) for v in value])
        else:
            setattr(msg, name, value)
    return msg


def plain(value):
    if hasattr(value, "get_fields_and_field_types"):
        return {k: plain(getattr(value, k)) for k in value.get_fields_and_field_types()}
    if isinstance(value, (np.ndarray, array.array)):
        return value.tolist()
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def cdr() -> int:
    from rclpy.serialization import deserialize_message, serialize_message

    for line in sys.stdin:
        case = json.loads(line)
        cls = message_class(case["type"])
        theirs = serialize_message(build(cls, case["values"]))
        decoded = deserialize_message(bytes.fromhex(case["ours_hex"]), cls)
        print(json.dumps({"theirs_hex": theirs.hex(), "decoded": plain(decoded)}), flush=True)
    return 0


def ask_server() -> int:
    import rclpy
    from mm_ros.action import Ask
    from rclpy.action import ActionServer
    from rclpy.executors import ExternalShutdownException
    from vision_msgs.msg import Detection2D

    rclpy.init()
    node = rclpy.create_node("ask_server", namespace="/mm_ros_test")

    def execute(goal_handle):
        words = goal_handle.request.question.split()
        for i in range(1, len(words) + 1):
            feedback = Ask.Feedback(
                partial_text=" ".join(words[:i]), generated_tokens=i, stage="generating"
            )
            goal_handle.publish_feedback(feedback)
            time.sleep(0.05)
        time.sleep(0.3)  # the last feedback arrives before the result (rclpy drops later ones)
        goal_handle.succeed()
        result = Ask.Result()
        result.answer.question = goal_handle.request.question
        result.answer.text = "echo: " + goal_handle.request.question
        result.answer.modalities = list(goal_handle.request.modalities)
        detection = Detection2D()
        detection.bbox.center.position.x = 320.0
        detection.bbox.size_x = 64.0
        result.answer.detections.detections = [detection]
        result.answer.generated_tokens = len(words)
        return result

    ActionServer(node, Ask, "ask", execute)
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        rclpy.spin(node)
    return 0


def ask_client(question: str) -> int:
    import rclpy
    from mm_ros.action import Ask
    from rclpy.action import ActionClient

    rclpy.init()
    node = rclpy.create_node("ask_client")
    client = ActionClient(node, Ask, "/mm_ros_test/ask")
    if not client.wait_for_server(timeout_sec=30):
        print("no server", file=sys.stderr)
        return 1
    feedback: list[str] = []
    goal = Ask.Goal(question=question, modalities=["image", "imu"])
    send = client.send_goal_async(
        goal, feedback_callback=lambda m: feedback.append(m.feedback.partial_text)
    )
    rclpy.spin_until_future_complete(node, send, timeout_sec=30)
    handle = send.result()
    result_future = handle.get_result_async()
    rclpy.spin_until_future_complete(node, result_future, timeout_sec=30)
    result = result_future.result()
    print(
        json.dumps(
            {
                "accepted": handle.accepted,
                "status": result.status,
                "feedback": feedback,
                "answer": plain(result.result.answer),
            }
        )
    )
    node.destroy_node()
    rclpy.shutdown()
    return 0


def whereami() -> int:
    import mm_ros.action
    import mm_ros.msg

    import mm_ros
    from mm_ros.interfaces import get_store
    from mm_ros.interfaces.store import own_definition_root

    print(
        json.dumps(
            {
                "package": mm_ros.__file__,
                "msg": mm_ros.msg.__file__,
                "action": mm_ros.action.__file__,
                "version": mm_ros.__version__,
                "definitions": str(own_definition_root()),
                "ask_hash": get_store().hash("mm_ros/action/Ask"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "cdr":
        sys.exit(cdr())
    if command == "ask-server":
        sys.exit(ask_server())
    if command == "ask-client":
        sys.exit(ask_client(sys.argv[2]))
    sys.exit(whereami())
