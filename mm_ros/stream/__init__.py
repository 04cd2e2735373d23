"""Stream sensors from a device without ROS 2 (a headset) to a robot: ``HeadsetStreamer``.

``TimeServer`` is the robot side of the clock exchange (``mm-ros run time_server``).
"""

from mm_ros.stream.clock import ClockClient, TimeServer
from mm_ros.stream.streamer import HeadsetStreamer, StreamConfig

__all__ = ["ClockClient", "HeadsetStreamer", "StreamConfig", "TimeServer"]
