"""Torch device settings: auto picks CUDA only when torch sees a GPU; typos are config errors."""

from __future__ import annotations

import pytest

from mm_ros.core.errors import ConfigError
from mm_ros.engines.device import check_device, resolve_device
from mm_ros.engines.selection import EngineConfig
from mm_ros.llm.backends.base import BackendConfig
from mm_ros.nodes.adapter_node import AdapterNodeConfig
from mm_ros.nodes.model_service import ModelServiceConfig

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("text", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_accepted_devices(text: str) -> None:
    assert check_device(text) == text


@pytest.mark.parametrize("text", ["gpu", "CUDA", "cuda:", "cuda:x", "cpu:0", "", "mps"])
def test_rejected_devices_name_what_was_expected(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"expected auto, cpu, cuda or cuda:N, found {text!r}"):
        check_device(text)


def test_auto_follows_what_torch_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    # an explicit choice is kept: asking for cuda without a GPU fails loudly at load, never
    # quietly on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("cpu") == "cpu"


def test_every_config_defaults_to_auto_and_validates() -> None:
    assert EngineConfig().device == "auto"
    assert BackendConfig().device == "auto"
    assert ModelServiceConfig().device == "auto"
    assert AdapterNodeConfig().device == "auto"
    assert ModelServiceConfig(device="cuda:1").backend_config().engine.device == "cuda"
    assert ModelServiceConfig().backend_config().engine.device == "auto"
    for build in (
        lambda: EngineConfig(device="gpu"),
        lambda: BackendConfig(device="gpu"),
        lambda: ModelServiceConfig(device="gpu"),
        lambda: AdapterNodeConfig(device="gpu"),
    ):
        with pytest.raises(ConfigError, match="found 'gpu'"):
            build()


def test_model_service_loads_and_reports_where_auto_put_the_model() -> None:
    import logging

    from mm_ros.nodes.model_service import ServiceCore

    core = ServiceCore(ModelServiceConfig(), None, logging.getLogger("test"))  # type: ignore[arg-type]
    assert core.lm_device() == ""
    core.configure()  # the embedded mm-tiny, device auto
    try:
        expected = "cuda:0" if torch.cuda.is_available() else "cpu"
        assert core.lm_device() == expected
        assert f"LM on {expected} (" in core.describe()
        assert f"eager on {expected}" in core.describe()  # the adapters followed the model
    finally:
        core.close()
