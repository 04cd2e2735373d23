"""``mm-ros engines export|build|list|verify``: ONNX export, offline builds, the cache's state.

``export`` writes ONNX with a parity report against torch; ``build`` makes TensorRT engines from
a manifest; ``list`` / ``verify`` show what the cache holds and whether it is valid here.

Exit codes: 0 ok, 1 runtime failure (or an invalid cache entry for ``verify``), 2 bad usage or
input (a broken adapter folder or manifest). Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mm_ros.core.errors import CheckpointError, ManifestError, RuntimeUnavailableError

if TYPE_CHECKING:
    from mm_ros.engines.cache import Entry
    from mm_ros.engines.device import GpuIdentity

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
DEFAULT_CACHE = "engines/cache"
FP32_ATOL = 1e-4  # ONNX Runtime CPU vs torch eager, same fp32 math in another order
FP16_ATOL = 5e-2  # an fp16 export against the fp32 reference


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``engines`` and its subcommands."""
    parser = subparsers.add_parser(
        "engines", help="export adapters to ONNX, build and list engines"
    )
    sub = parser.add_subparsers(dest="engines_command", metavar="SUBCOMMAND")

    export = sub.add_parser("export", help="adapter folder → ONNX + parity report vs torch")
    export.add_argument("adapter", type=Path, metavar="ADAPTER_DIR")
    export.add_argument("--fp16", action="store_true", help="export in half precision")
    export.add_argument(
        "--out", type=Path, help="ONNX path (default ADAPTER_DIR/model[.fp16].onnx)"
    )
    export.add_argument(
        "--exporter",
        choices=["dynamo", "legacy"],
        default="dynamo",
        help="torch.export-based (default, needs onnxscript) or the TorchScript one",
    )
    export.add_argument("--opset", type=int, default=18, help="17-20 suit TensorRT 10.3 and 11")
    export.set_defaults(handler=cmd_export)

    build = sub.add_parser("build", help="build TensorRT engines listed in a manifest")
    build.add_argument("--manifest", type=Path, required=True)
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.set_defaults(handler=cmd_build)

    for name, handler, text in (
        ("list", cmd_list, "show cache entries and whether TensorRT can run here"),
        ("verify", cmd_verify, "check every cache entry; exit 1 if any is unusable here"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--cache", type=Path, default=Path(DEFAULT_CACHE))
        cmd.set_defaults(handler=handler)


def _fail(message: str, code: int) -> int:
    print(f"mm-ros engines: {message}", file=sys.stderr)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    """Export ADAPTER_DIR to ONNX and print parity figures against torch eager."""
    from tqdm import tqdm

    from mm_ros.adapters.checkpoint import load_adapter
    from mm_ros.engines.export import export_onnx, parity_report

    try:
        adapter = load_adapter(args.adapter)
    except CheckpointError as err:
        return _fail(str(err), EXIT_USAGE)
    out = args.out or args.adapter / ("model.fp16.onnx" if args.fp16 else "model.onnx")
    shape = adapter.spec.input_shape()
    stages = tqdm(total=2, desc=f"{adapter.spec.name}: export", disable=None, leave=False)
    try:
        export_onnx(
            adapter.module,
            shape,
            out,
            dynamo=args.exporter == "dynamo",
            opset=args.opset,
            fp16=args.fp16,
        )
        stages.set_description(f"{adapter.spec.name}: parity")
        stages.update()
        parity = parity_report(adapter.module, shape, out)
    except RuntimeUnavailableError as err:
        print(f"wrote {out}; parity: not measured: {err.reason}")
        return EXIT_OK
    finally:
        stages.close()
    print(f"wrote {out} ({out.stat().st_size} bytes, {args.exporter} exporter, opset {args.opset})")
    atol = FP16_ATOL if args.fp16 else FP32_ATOL
    verdict = "ok" if parity.within(atol) else f"FAILED (limit {atol:g})"
    print(
        f"parity vs torch eager fp32 on {', '.join(parity.providers)}, batch {parity.batch}: "
        f"max abs error {parity.max_abs_error:.3g}, cosine {parity.cosine:.6f} — {verdict}"
    )
    return EXIT_OK if parity.within(atol) else EXIT_RUNTIME


def cmd_build(args: argparse.Namespace) -> int:
    """Build every engine in the manifest that the cache lacks."""
    from mm_ros.engines.builder import build_manifest
    from mm_ros.engines.manifest import load_manifest

    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as err:
        return _fail(str(err), EXIT_USAGE)
    try:
        results = build_manifest(manifest, progress=not args.no_progress)
    except RuntimeUnavailableError as err:
        return _fail(f"cannot build TensorRT engines here: {err.reason}", EXIT_RUNTIME)
    except CheckpointError as err:
        return _fail(str(err), EXIT_USAGE)
    for result in results:
        print(f"{result.name}: {result.status} ({result.path})")
    return EXIT_OK


def machine_identity() -> tuple[GpuIdentity | None, str]:
    """Return this machine's TensorRT + GPU identity, or None and why not."""
    from mm_ros.engines.device import gpu_identity

    try:
        return gpu_identity(), ""
    except RuntimeUnavailableError as err:
        return None, err.reason


def _ort_line() -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime: not installed (pip install mm-ros[cpu] or mm-ros[gpu])"
    return f"onnxruntime {ort.__version__}: providers {', '.join(ort.get_available_providers())}"


def entry_status(entry: Entry, identity: GpuIdentity | None, why_not: str) -> str:
    """Return ``valid here`` or why a cache entry cannot run on this machine."""
    if entry.problem:
        return f"unusable: {entry.problem}"
    if entry.key is None:  # pragma: no cover - a key-less entry always has a problem
        return "unusable: no key"
    if identity is None:
        return f"not usable here: {why_not}"
    mine = (identity.tensorrt_version, identity.gpu_name, identity.compute_capability)
    theirs = (entry.key.tensorrt_version, entry.key.gpu_name, entry.key.compute_capability)
    if mine != theirs:
        return (
            f"not for this machine (built for TensorRT {theirs[0]} on {theirs[1]} sm {theirs[2]})"
        )
    return "valid here"


def _report(cache_dir: Path) -> list[tuple[Entry, str]]:
    from mm_ros.engines.cache import EngineCache

    identity, why_not = machine_identity()
    if identity is None:
        print(f"TensorRT: no TensorRT engine can be used here: {why_not}")
    else:
        print(
            f"TensorRT {identity.tensorrt_version} on {identity.gpu_name} "
            f"(compute capability {identity.compute_capability})"
        )
    print(_ort_line())
    entries = EngineCache(cache_dir).entries()
    print(f"cache {cache_dir}: {len(entries)} engine(s)")
    rows = []
    for entry in entries:
        status = entry_status(entry, identity, why_not)
        key = entry.key
        detail = f"{key.precision} {key.shape_profile} " if key else ""
        print(f"  {entry.name}  {detail}{entry.path.name}: {status}")
        rows.append((entry, status))
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    """Print the machine's TensorRT status and every cache entry."""
    _report(args.cache)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Like ``list``; exit 1 when an entry is unusable on this machine."""
    rows = _report(args.cache)
    bad = [entry.name for entry, status in rows if status != "valid here"]
    if bad:
        return _fail(f"{len(bad)} engine(s) not usable here: {', '.join(bad)}", EXIT_RUNTIME)
    return EXIT_OK
