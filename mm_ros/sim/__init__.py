"""Synthetic egocentric world: scenes of coloured shapes, a moving camera, IMU and audio events.

``World(WorldConfig(seed=7)).step(now_ns)`` yields core values (frames, IMU samples, audio
chunks) and per-frame ground truth; ``write_episode`` stores an episode as ``.npz`` + ``.json``.
Imports core, numpy and OpenCV; never a bus or torch.
"""
