"""Modality adapters: encoders, token reducers, projectors and their checkpoints (torch).

Submodules import torch; this package's own import stays light so that the spec and the
checkpoint format can be read where torch is absent (e.g. to list engines on a headset).
"""
