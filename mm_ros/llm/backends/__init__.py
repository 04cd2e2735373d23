"""Model backends: each turns a model folder into a `LoadedBackend` (see ``base.py``)."""
