"""What this machine offers an engine: GPU identity, TensorRT version, free memory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mm_ros.core.diagnostics import GpuMemory
from mm_ros.core.errors import ConfigError, EngineError, RuntimeUnavailableError
from mm_ros.engines.runtimes.base import RuntimeKind

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class GpuIdentity:
    """The parts of an engine key that come from the machine."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


DEVICE_HELP = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device(text: str, what: str = "device") -> str:
    """Return ``text`` if it names a torch device this project accepts, else raise ConfigError."""
    if not _DEVICE.fullmatch(text):
        raise ConfigError(f"{what}: expected {DEVICE_HELP}, found {text!r}")
    return text


def resolve_device(text: str, what: str = "device") -> str:
    """Turn ``auto`` into ``cuda`` when torch sees a CUDA GPU, else ``cpu``; others unchanged.

    An explicit ``cuda`` stays ``cuda`` even without a GPU: the loader then says none is visible
    rather than quietly running on the CPU.
    """
    check_device(text, what)
    if text != "auto":
        return text
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def cuda_index(device: str) -> int | None:
    """CUDA ordinal of a resolved device: ``cuda`` → 0, ``cuda:N`` → N, ``cpu`` → None."""
    check_device(device)
    if device == "auto":
        raise ConfigError("cuda_index: resolve 'auto' first (resolve_device)")
    if device == "cpu":
        return None
    _, _, number = device.partition(":")
    return int(number) if number else 0


def gpu_identity(index: int = 0) -> GpuIdentity:
    """TensorRT version + CUDA device ``index``; RuntimeUnavailableError names all missing."""
    from mm_ros.engines.runtimes.tensorrt import tensorrt_module

    missing = []
    trt = None
    try:
        trt = tensorrt_module()
    except RuntimeUnavailableError as err:
        missing.append(err.reason)
    cuda = None
    try:
        import torch

        if not torch.cuda.is_available():
            missing.append("no CUDA GPU visible (torch.cuda.is_available() is False)")
        elif index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            missing.append(f"CUDA device {index} asked for, {count} visible (0..{count - 1})")
        else:
            cuda = torch.cuda
    except ImportError as err:
        missing.append(f"torch not installed, needed for GPU buffers ({err})")
    if trt is None or cuda is None:
        raise RuntimeUnavailableError(RuntimeKind.TENSORRT.value, "; ".join(missing))
    major, minor = cuda.get_device_capability(index)
    return GpuIdentity(str(trt.__version__), cuda.get_device_name(index), f"{major}.{minor}")


def available_memory_bytes(meminfo: Path = MEMINFO) -> int:
    """Return the bytes a build may use.

    Host MemAvailable (Jetson's GPU shares it); on a discrete GPU, the smaller of that and the
    GPU's free memory.
    """
    host = 0
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                host = int(line.split()[1]) * 1024  # kB → bytes
                break
    except OSError as err:
        raise EngineError(f"cannot read free memory from {meminfo}: {err}") from err
    try:
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(0)
            host = min(host, int(free)) if host else int(free)
    except ImportError:
        pass
    return host


def check_free_memory(needed_bytes: int, available_bytes: int, what: str) -> None:
    """Raise EngineError when fewer than ``needed_bytes`` are available (before a build)."""
    if available_bytes < needed_bytes:
        raise EngineError(
            f"{what}: needs {needed_bytes / 2**20:.0f} MiB free, "
            f"found {available_bytes / 2**20:.0f}"
            " MiB (close other processes, lower workspace_mib, or build on a bigger machine)"
        )


def gpu_memory(device: str = "cuda:0") -> GpuMemory | None:
    """Sample torch.cuda's memory figures of ``device`` for /diagnostics; None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    index = torch.device(device).index or 0
    free, total = torch.cuda.mem_get_info(index)  # whole device: other processes count too
    return GpuMemory(
        f"{device} {torch.cuda.get_device_name(index)}",
        allocated_bytes=int(torch.cuda.memory_allocated(index)),
        reserved_bytes=int(torch.cuda.memory_reserved(index)),
        total_bytes=int(total),
        free_bytes=int(free),
    )
