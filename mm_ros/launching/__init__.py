"""Run ROS 2 YAML launch files without ROS 2 (``mm-ros launch``).

The same files run under ``ros2 launch mm_ros FILE``.
"""
