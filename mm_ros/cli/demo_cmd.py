"""``mm-ros demo``: the most complete end-to-end path the project has, on the embedded default.

Today: a Zenoh router, the ``sim_world`` node as its own process, and an observer on the pip bus
that lists the graph, measures every stream's rate, prints what the ground truth says is around
the camera, saves the latest frame with its ground-truth boxes drawn, and records a bag.
The language-model service joins this path when it lands.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RUNTIME = 0, 1
STREAMS = {  # topic: (type, what the demo checks)
    "/camera/image_raw": "sensor_msgs/msg/Image",
    "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
    "/imu/data": "sensor_msgs/msg/Imu",
    "/audio/audio_stamped": "audio_common_msgs/msg/AudioDataStamped",
    "/sim_world/ground_truth": "std_msgs/msg/String",
}


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    demo = subparsers.add_parser("demo", help="run the end-to-end demo on the synthetic world")
    demo.add_argument("--seed", type=int, default=3, help="world seed (default 3: a busy start)")
    demo.add_argument("--seconds", type=float, default=3.0, help="measurement window")
    demo.add_argument("--out", default="demo_output", help="folder for the picture and the bag")
    demo.set_defaults(handler=_demo)


def _free_endpoint() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp/127.0.0.1:{sock.getsockname()[1]}"


def _shown_px(truth: dict[str, Any]) -> float:
    """Pixels covered by the boxes of the objects in view."""
    boxes = [o["box_px"] for o in truth["objects"] if o.get("box_px")]
    return float(sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes))


def _draw(image: Any, truth: dict[str, Any], path: Path) -> None:
    import cv2
    import numpy as np

    from mm_ros.core.images import decode_image

    frame = decode_image(
        image.encoding, image.width, image.height, image.step, bool(image.is_bigendian), image.data
    )
    canvas = cv2.cvtColor(np.ascontiguousarray(frame.pixels), cv2.COLOR_RGB2BGR)
    for obj in truth["objects"]:
        if not obj.get("box_px"):
            continue
        x1, y1, x2, y2 = (round(v) for v in obj["box_px"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (255, 255, 255), 2)
        label = f"{obj['name']} {obj['azimuth_deg']:+.0f} deg"
        cv2.putText(
            canvas,
            label,
            (x1, max(12, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    cv2.imwrite(str(path), canvas)


def _demo(args: argparse.Namespace) -> int:  # noqa: PLR0915 - a script, top to bottom
    from mm_ros.bus.bags import record
    from mm_ros.bus.naming import RELIABLE, SENSOR_DATA
    from mm_ros.bus.protocol import BusConfig
    from mm_ros.bus.zenoh_bus import ZenohBus, wait_until
    from mm_ros.bus.zenoh_session import Router
    from mm_ros.interfaces.bags import BagReader

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    endpoint = _free_endpoint()
    env = dict(os.environ, MM_ROS_CONNECT=endpoint, MM_ROS_BUS="zenoh")
    print(f"== router on {endpoint}; starting sim_world (seed {args.seed}) as its own process")
    with Router((endpoint,)):
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mm_ros.cli.main",
                "run",
                "sim_world",
                "--ros-args",
                "-p",
                f"seed:={args.seed}",
            ],
            env=env,
        )
        try:
            with ZenohBus("mm_ros_demo", config=BusConfig(connect=(endpoint,))) as bus:
                got: dict[str, list[float]] = {t: [] for t in STREAMS}
                last: dict[str, Any] = {}
                pairs: list[tuple[Any, dict[str, Any]]] = []  # (image, its ground truth)

                def keep(topic: str) -> Any:
                    def callback(message: Any) -> None:
                        got[topic].append(time.monotonic())
                        last[topic] = message
                        if topic.endswith("ground_truth") and "/camera/image_raw" in last:
                            # sim_world publishes a frame's image just before its truth
                            pairs.append((last["/camera/image_raw"], json.loads(message.data)))
                            del pairs[:-90]

                    return callback

                for topic, typename in STREAMS.items():
                    qos = RELIABLE if topic.endswith("ground_truth") else SENSOR_DATA
                    bus.create_subscription(topic, typename, keep(topic), qos)
                wait_until(lambda: all(got.values()), 30, "every sim_world stream")
                time.sleep(0.5)  # let the start-up burst of catch-up samples pass
                window_start = time.monotonic()
                time.sleep(args.seconds)  # the measurement window
                nodes: list[str] = []

                def sim_visible() -> bool:
                    nodes[:] = bus.node_names()
                    return "/sim_world" in nodes

                wait_until(sim_visible, 10, "/sim_world in the graph")
                print("\n== graph")
                for name in nodes:
                    print(f"  node {name}")
                print(f"\n== stream rates over the last {args.seconds:g} s")
                elapsed = time.monotonic() - window_start
                for topic, stamps in got.items():
                    rate = sum(s >= window_start for s in stamps) / elapsed
                    print(f"  {topic:28s} {STREAMS[topic]:42s} {rate:6.1f} Hz")
                # of the last 3 s of frames, the one showing the most (some show nothing)
                image, truth = max(reversed(pairs), key=lambda p: _shown_px(p[1]))
                print(f"\n== ground truth at frame {truth['index']}: motion {truth['motion']}")
                sound = truth.get("last_sound") or {}
                print(f"  last sound: {sound.get('sound', 'none')}")
                for obj in truth["objects"]:
                    if obj.get("in_view"):
                        print(
                            f"  {obj['name']:18s} {obj['side']:6s} {obj['azimuth_deg']:+6.1f} "
                            f"deg  {obj['distance_m']:.1f} m  box {obj['box_px']}"
                        )
                picture = out / "frame_with_ground_truth.png"
                _draw(image, truth, picture)
                print(f"\n== wrote {picture}")
                bag_path = out / f"bag_{time.strftime('%Y%m%d_%H%M%S')}"
                stop = threading.Event()
                counts = record(bus, bag_path, dict(STREAMS), stop=stop, duration_s=2.0)
                bag = BagReader(bag_path)
                first, end = bag.duration_ns()
                print(
                    f"== recorded {sum(counts.values())} messages in "
                    f"{(end - first) / 1e9:.1f} s to {bag_path} ({bag.storage})"
                )
        finally:
            sim.send_signal(signal.SIGINT)
            try:
                sim.wait(timeout=20)
            except subprocess.TimeoutExpired:
                sim.kill()
    if sim.returncode not in (0, -signal.SIGINT):
        print(f"mm-ros demo: sim_world exited with {sim.returncode}", file=sys.stderr)
        return EXIT_RUNTIME
    print("\n== demo finished: the language-model service joins this path with issue 6/7")
    return EXIT_OK
