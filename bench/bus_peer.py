"""One side of a transport benchmark, run as its own process by bench_bus.py.

    python bus_peer.py sub VARIANT MSG COUNT ENDPOINT     -> prints JSON {latencies_ms, received}
    python bus_peer.py pub VARIANT MSG COUNT ENDPOINT RATE

VARIANT: raw_zenoh | zenoh_tcp | zenoh_shm | rclpy_plain | rclpy_bus. MSG: image | imu.
Latency = receive time (after a numpy view of the data exists) - send time in the header stamp.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
import time

import numpy as np

WIDTH, HEIGHT = 1920, 1080
TOPIC = {"image": "/bench/image", "imu": "/bench/imu"}
TYPE = {"image": "sensor_msgs/msg/Image", "imu": "sensor_msgs/msg/Imu"}
RAW_KEY = {"image": "0/bench/raw_image", "imu": "0/bench/raw_imu"}


def stamp(now_ns: int) -> dict[str, int]:
    return {"sec": now_ns // 1_000_000_000, "nanosec": now_ns % 1_000_000_000}


def main() -> int:  # noqa: PLR0912, PLR0915 - one flat script per variant
    role, variant, kind, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    endpoint = sys.argv[5]
    rate = float(sys.argv[6]) if role == "pub" else 0.0
    pixels = np.random.default_rng(0).integers(0, 255, WIDTH * HEIGHT * 3, dtype=np.uint8)
    latencies: list[float] = []
    done = threading.Event()

    def arrived(sent_ns: int, view: np.ndarray) -> None:
        assert view.size > 0
        latencies.append((time.time_ns() - sent_ns) / 1e6)
        if len(latencies) >= count:
            done.set()

    if variant == "raw_zenoh":
        import zenoh

        config = zenoh.Config()
        for key, value in (("mode", '"peer"'), ("connect/endpoints", json.dumps([endpoint])),
                           ("scouting/multicast/enabled", "false"),
                           ("listen/endpoints", '["tcp/127.0.0.1:0"]'),
                           ("transport/shared_memory/enabled", "false")):  # fmt: skip
            config.insert_json5(key, value)
        session = zenoh.open(config)
        if role == "sub":

            def on_sample(sample: zenoh.Sample) -> None:
                payload = sample.payload.to_bytes()
                sent = struct.unpack("<q", sample.attachment.to_bytes()[:8])[0]
                arrived(sent, np.frombuffer(payload, dtype=np.uint8))

            session.declare_subscriber(RAW_KEY[kind], on_sample)
        else:
            pub = session.declare_publisher(RAW_KEY[kind])
            payload = pixels.tobytes() if kind == "image" else bytes(324)

            def send() -> None:
                pub.put(payload, attachment=struct.pack("<q", time.time_ns()))
    elif variant in ("zenoh_tcp", "zenoh_shm"):
        from mm_ros.bus.naming import RELIABLE
        from mm_ros.bus.protocol import BusConfig, as_array
        from mm_ros.bus.zenoh_bus import ZenohBus

        bus = ZenohBus(
            f"bench_{role}",
            config=BusConfig(connect=(endpoint,), shared_memory=variant == "zenoh_shm"),
        )
        qos = RELIABLE  # the same QoS in every variant (plain rclpy uses depth 10 reliable)
        if role == "sub":

            def on_msg(msg: object) -> None:
                sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                data = msg.data if kind == "image" else msg.angular_velocity_covariance
                arrived(sent, as_array(data))

            bus.create_subscription(TOPIC[kind], TYPE[kind], on_msg, qos)
        else:
            pub = bus.create_publisher(TOPIC[kind], TYPE[kind], qos)
            make = bus.msg(TYPE[kind])

            def send() -> None:
                if kind == "image":
                    pub.publish(
                        make(
                            header={"stamp": stamp(time.time_ns())},
                            height=HEIGHT,
                            width=WIDTH,
                            encoding="rgb8",
                            step=WIDTH * 3,
                            data=pixels,
                        )
                    )
                else:
                    pub.publish(make(header={"stamp": stamp(time.time_ns())}))
    else:
        import rclpy

        if variant == "rclpy_plain":
            from sensor_msgs.msg import Image, Imu

            rclpy.init()
            node = rclpy.create_node(f"bench_{role}")
            cls = Image if kind == "image" else Imu
            if role == "sub":

                def on_plain(msg: object) -> None:
                    sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                    arrived(sent, np.asarray(msg.data if kind == "image"
                                             else msg.angular_velocity_covariance))  # fmt: skip

                node.create_subscription(cls, TOPIC[kind], on_plain, 10)
            else:
                pub = node.create_publisher(cls, TOPIC[kind], 10)

                def send() -> None:
                    msg = cls()
                    now = time.time_ns()
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
                    if kind == "image":
                        msg.height, msg.width, msg.encoding, msg.step = (
                            HEIGHT,
                            WIDTH,
                            "rgb8",
                            WIDTH * 3,
                        )
                        msg.data = pixels.tobytes()
                    pub.publish(msg)

            threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
        else:
            from mm_ros.bus.naming import RELIABLE
            from mm_ros.bus.protocol import as_array
            from mm_ros.bus.rclpy_bus import RclpyBus

            bus = RclpyBus(f"bench_{role}")
            qos = RELIABLE
            if role == "sub":

                def on_bus(msg: object) -> None:
                    sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                    data = msg.data if kind == "image" else msg.angular_velocity_covariance
                    arrived(sent, as_array(data, np.uint8 if kind == "image" else np.float64))

                bus.create_subscription(TOPIC[kind], TYPE[kind], on_bus, qos)
            else:
                pub = bus.create_publisher(TOPIC[kind], TYPE[kind], qos)
                make = bus.msg(TYPE[kind])

                def send() -> None:
                    if kind == "image":
                        pub.publish(make(header={"stamp": stamp(time.time_ns())}, height=HEIGHT,
                                         width=WIDTH, encoding="rgb8", step=WIDTH * 3,
                                         data=pixels.tobytes()))  # fmt: skip
                    else:
                        pub.publish(make(header={"stamp": stamp(time.time_ns())}))

    if role == "sub":
        print("ready", flush=True)
        # the harness writes a line once the publisher is done: drops never make us wait
        threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
        done.wait(count / 20 + 30)
        print(json.dumps({"latencies_ms": latencies, "received": len(latencies)}), flush=True)
        os._exit(0)  # skip teardown: live zenoh/DDS threads can hang interpreter exit
    time.sleep(1.5)  # discovery and route set-up before the clock starts
    period = 1.0 / rate
    next_at = time.perf_counter()
    for _ in range(count):
        send()
        next_at += period
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    time.sleep(1.0)
    print(json.dumps({"sent": count}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
