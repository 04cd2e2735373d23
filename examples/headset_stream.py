"""Stream a headset's camera, microphone and IMU to a robot (synthetic sensors stand in here)."""

import argparse
import time

import numpy as np

from mm_ros.stream import HeadsetStreamer

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--connect", default="tcp/127.0.0.1:7447", help="the robot's Zenoh router")
parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long; 0: Ctrl-C")
parser.add_argument("--budget-mbps", type=float, default=0.0, help="bandwidth budget; 0: none")
args = parser.parse_args()

scene = np.tile(np.arange(640, dtype=np.uint8), (480, 1))[:, :, None].repeat(3, axis=2)
with HeadsetStreamer(args.connect, budget_mbps=args.budget_mbps) as headset:
    start, tick = time.monotonic(), 0
    while not args.seconds or time.monotonic() - start < args.seconds:
        tick += 1  # a 200 Hz loop: IMU every tick, 20 ms audio chunks at 50 Hz, camera at 25 fps
        headset.send_imu(accel=(0.0, 0.0, 9.81), gyro=(0.0, 0.0, 0.1))
        if tick % 4 == 0:
            headset.send_audio(np.sin(np.arange(320) * 0.17).astype(np.float32) * 0.1, 16000)
        if tick % 8 == 0:
            headset.send_frame(np.roll(scene, tick, axis=1))
        time.sleep(max(0.0, start + tick / 200 - time.monotonic()))
