"""Streaming tests run over the real zenoh bus with an in-process router."""

from tests.bus.conftest import free_port, make_zenoh, router  # noqa: F401 - fixtures
