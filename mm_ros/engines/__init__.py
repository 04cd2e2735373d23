"""Engines: ONNX export, TensorRT build, runtimes behind one protocol, the keyed engine cache.

Importing this package loads neither onnxruntime nor tensorrt: each runtime module imports its
library when a runtime is created, and reports a missing one as RuntimeUnavailableError.
"""
