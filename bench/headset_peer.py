"""The headset side of bench_headset: stream frames, audio and IMU for a while, then exit.

    python bench/headset_peer.py CONNECT TRANSPORT BUDGET_MBPS SECONDS

640x480 frames at 25 fps (a textured scene that JPEG cannot shrink to nothing), 20 ms audio
chunks at 50 Hz, IMU at 200 Hz; every stamp = wall time at the send call (same host as the
robot), audio included, so latency is send → arrival, not capture → arrival.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from mm_ros.stream import HeadsetStreamer


def main() -> None:
    connect, transport, budget, seconds = (
        sys.argv[1],
        sys.argv[2],
        float(sys.argv[3]),
        float(sys.argv[4]),
    )
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    scene = np.kron(blocks, np.ones((8, 8, 1), np.uint8))  # (480, 640, 3)
    ramp = np.linspace(0, 60, 640, dtype=np.float32)[None, :, None]
    scene = np.clip(scene * 0.5 + ramp, 0, 255).astype(np.uint8)
    with HeadsetStreamer(
        connect,
        transport=transport,
        budget_mbps=budget,
        time_sync=False,
        image_topic="headset/image",
    ) as headset:
        time.sleep(1.0)  # let the robot's subscriptions match
        start, tick = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            tick += 1
            headset.send_imu((0.0, 0.0, 9.81), (0.0, 0.0, 0.1))
            if tick % 4 == 0:
                headset.send_audio(np.zeros(320, np.int16), 16000, time.time_ns())  # send time
            if tick % 8 == 0:
                headset.send_frame(np.roll(scene, tick, axis=1))
            time.sleep(max(0.0, start + tick / 200 - time.monotonic()))
        print(headset.status(), flush=True)


if __name__ == "__main__":
    main()
