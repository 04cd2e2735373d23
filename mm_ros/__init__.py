"""mm_ros: one multimodal model service for ROS 2 robots and headsets."""

__version__ = "0.1.0"
