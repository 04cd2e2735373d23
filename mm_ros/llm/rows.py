"""One decode step for many questions at once, bit-identical to each question decoded alone.

Continuous batching (:mod:`mm_ros.llm.batching`) feeds the newest token of every running
question through the language model in one step. The usual way, padding the rows into one
``(B, 1, D)`` batch with an attention mask and calling the model, changes the numbers a question
gets with the company it keeps, and greedy decoding turns a changed last bit into another word
now and then:

- matrix products: BLAS picks its kernel by the number of rows. With MKL on this project's CPUs
  a lone row (a gemv) and a row inside a block of 4 are summed in different orders, and with two
  threads a row's result also depends on where the split between the threads falls;
- attention: padding a shorter cache to the longest changes the length of the softmax sums, and
  with it the order they are added in.

So every number of a row is computed the same way whatever else is in the batch, and a lone
question runs the very same code (a batch of one):

- the position-wise parts (norms, q/k/v/o projections, MLP, LM head) run on all rows at once,
  through a :class:`Matmul` and padded with zero rows to a row count from a :class:`RowLadder`,
  a pair under which each row's result was checked, when the step was built, not to depend on
  the row count, on the row's place or on the other rows (:func:`row_invariant`, on this device,
  with this model's own modules). On CPU the first pair tried is oneDNN on weights packed once
  (:class:`PackedMatmul`): a row's result is the same at every row count there, and 4 rows cost
  what 1 does, where MKL's gemm on 4 rows costs twice its gemv on one;
- attention runs per row over exactly that row's own cache, with the shapes and the call of a
  lone decode step, so padding never enters a softmax;
- rotary cos/sin come from one call per row, with a lone step's shapes.

Where no pair passes, or the layers are not ones this step knows (Llama, Qwen2 without sliding
windows), rows are decoded one after another through the model's own forward
(:class:`OneByOneStep`): still exact, but without sharing the weight reads, which is what makes
batching pay on a memory-bound decode.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from mm_ros.core.diagnostics import ONE_ROW
from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from torch import nn


KNOWN_LAYERS = frozenset({"LlamaDecoderLayer", "Qwen2DecoderLayer"})  # same layer maths
ATTENTIONS = ("sdpa", "eager")  # per-row calls with a lone step's arguments
STATEFUL_ROPE = ("dynamic", "longrope")  # rescale with the sequence length: not per-row exact
BLOCKS = (1, 2, 4, 8, 16)  # row multiples tried in order (MKL's sgemm needs 4 here)
MIN_CHECKED_ROWS = 16  # ladders are checked up to at least this many rows
TIMED_RUNS = 5  # lone-row timings per ladder, the fastest kept


class DecodeStep(Protocol):
    """``(n, 1, D)`` newest-token embeddings → ``(n, V)`` logits; each row's cache grows by one."""

    description: str  # for diagnostics: the formulation in use and why

    def __call__(
        self, embeds: torch.Tensor, caches: Sequence[Any], positions: Sequence[int]
    ) -> torch.Tensor:
        """Run one step for ``len(caches)`` rows at ``positions`` (each row's own)."""
        ...


@dataclass(frozen=True)
class RowLadder:
    """How many rows a step of ``n`` rows is padded to: a multiple of ``block``, or ``fixed``."""

    block: int = 0  # > 0: round n up to a multiple of it
    fixed: int = 0  # > 0: always this many rows (n must not exceed it)

    def __post_init__(self) -> None:
        if (self.block > 0) == (self.fixed > 0):
            raise ConfigError(
                f"RowLadder: expected exactly one of block or fixed > 0, found {self.block}, "
                f"{self.fixed}"
            )

    def rows(self, n: int) -> int:
        """Rows of the padded step for ``n`` live rows."""
        if self.fixed:
            if n > self.fixed:
                raise ConfigError(f"{n} rows in one step, more than the fixed {self.fixed}")
            return self.fixed
        return -(-n // self.block) * self.block

    def sizes(self, max_rows: int) -> tuple[int, ...]:
        """Every padded row count a step of up to ``max_rows`` rows can use (what is checked)."""
        if self.fixed:
            return (self.fixed,)
        top = self.rows(max(max_rows, MIN_CHECKED_ROWS))
        return tuple(range(self.block, top + 1, self.block))

    def describe(self) -> str:
        """E.g. "rows padded to a multiple of 4"."""
        if self.fixed:
            return f"rows padded to {self.fixed}"
        if self.block == 1:
            return "rows not padded"
        return f"rows padded to a multiple of {self.block}"


class Matmul(Protocol):
    """``x @ W.T + b`` for one ``nn.Linear`` of the model, on (rows, 1, in) → (rows, 1, out)."""

    name: str

    def __call__(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """Apply ``linear``'s weights to ``x``."""
        ...


class PlainMatmul:
    """torch's own ``F.linear`` (MKL on CPU, cuBLAS on CUDA)."""

    name = "torch linear"

    def __call__(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """Apply ``linear`` as its forward does."""
        return torch.nn.functional.linear(x, linear.weight, linear.bias)


class PackedMatmul:
    """oneDNN's matmul on a packed copy of each weight (CPU; costs a second copy of them)."""

    name = "oneDNN on packed weights"

    def __init__(self) -> None:
        self._packed: dict[nn.Linear, torch.Tensor] = {}

    @staticmethod
    def available(device: torch.device) -> bool:
        """Tell whether ``device`` is a CPU and torch has oneDNN with the ops inductor uses."""
        ops = torch.ops.mkldnn
        return (
            device.type == "cpu"
            and bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]
            and hasattr(ops, "_linear_pointwise")
            and hasattr(ops, "_reorder_linear_weight")
        )

    def pack(self, linears: Sequence[nn.Linear]) -> None:
        """Pack the weights of ``linears`` (once each) into oneDNN's blocked layout."""
        with torch.inference_mode():
            for linear in linears:
                if linear not in self._packed:
                    self._packed[linear] = torch.ops.mkldnn._reorder_linear_weight(
                        linear.weight.detach(), None
                    )

    def __call__(self, x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
        """Apply ``linear`` with its packed weight (packed now if it was not yet)."""
        if linear not in self._packed:
            self.pack([linear])
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self._packed[linear], linear.bias, "none", [None], ""
        )
        return out


def ladders(max_rows: int) -> tuple[RowLadder, ...]:
    """Ladders to try, cheapest first; the last pads every step to the same row count."""
    fixed = -(-max(max_rows, 1) // BLOCKS[-1]) * BLOCKS[-1]
    return (*(RowLadder(block=b) for b in BLOCKS), RowLadder(fixed=fixed))


def row_invariant(
    module: Callable[[torch.Tensor], torch.Tensor],
    width: int,
    sizes: Sequence[int],
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> bool:
    """Tell whether ``module`` gives each row the same bits at every size in ``sizes``, anywhere.

    Rows of ``(top, 1, width)`` random inputs are run whole, reversed, and as slices of each
    size from both ends; every slice is a fresh tensor, as in a real step. Kernel choice does
    not depend on the values, so one draw tells.
    """
    top = max(sizes)
    draw = torch.Generator().manual_seed(0)
    rows = torch.randn(top, 1, width, generator=draw).to(device=device, dtype=dtype)
    with torch.inference_mode():
        whole = module(rows)
        if not torch.equal(module(rows.flip(0)), whole.flip(0)):
            return False
        for size in sizes:
            for start in sorted({0, top - size}):
                part = rows[start : start + size].clone()
                if not torch.equal(module(part), whole[start : start + size]):
                    return False
    return True


def unsupported(model: Any) -> str | None:
    """Say why the row-block step cannot run ``model`` (None when it can)."""
    inner: Any = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    parts = ("norm", "rotary_emb")
    if layers is None or not hasattr(model, "lm_head") or not all(hasattr(inner, p) for p in parts):
        return f"{type(model).__name__} has no model.layers / model.norm / lm_head"
    names = sorted({type(layer).__name__ for layer in layers})
    attention = getattr(model.config, "_attn_implementation", "eager")
    rope = getattr(inner.rotary_emb, "rope_type", "default")
    reasons = (
        (not set(names) <= KNOWN_LAYERS,
         f"layers {', '.join(names)}: the row step knows {', '.join(sorted(KNOWN_LAYERS))}"),
        (any(getattr(layer.self_attn, "sliding_window", None) for layer in layers),
         "sliding-window attention needs a mask per row"),
        (attention not in ATTENTIONS,
         f"attention {attention!r}: the row step calls {' or '.join(ATTENTIONS)}"),
        (rope in STATEFUL_ROPE, f"rope type {rope!r} rescales with the sequence length"),
        (model.training, "the model is in training mode"),
    )  # fmt: skip
    return next((reason for failed, reason in reasons if failed), None)


class RowBlockStep:
    """Position-wise parts on a padded row block, attention per row (see the module docstring)."""

    def __init__(self, model: Any, matmul: Matmul, ladder: RowLadder, device: torch.device) -> None:
        self.model = model
        self.matmul = matmul
        self.ladder = ladder
        self.layers: list[Any] = list(model.model.layers)
        self.norm = model.model.norm
        self.rotary = model.model.rotary_emb
        self.lm_head = model.lm_head
        family = sys.modules[type(self.layers[0].self_attn).__module__]
        self.rotate = family.apply_rotary_pos_emb  # the family's own q/k rotation
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        self.attention = ALL_ATTENTION_FUNCTIONS.get_interface(
            model.config._attn_implementation, family.eager_attention_forward
        )
        self.threads = torch.get_num_threads()  # the check holds for this many threads
        where = f"{device}, {self.threads} threads" if device.type == "cpu" else str(device)
        self.description = (
            f"batched: {matmul.name}, {ladder.describe()}, attention per row (checked on {where})"
        )

    def __call__(
        self, embeds: torch.Tensor, caches: Sequence[Any], positions: Sequence[int]
    ) -> torch.Tensor:
        """(n, 1, D) → (n, V) logits; every cache (a transformers Cache) grows by one row."""
        n = len(caches)
        rows = self.ladder.rows(n)
        x = embeds.new_zeros((rows, 1, embeds.shape[-1]))  # (rows, 1, D), pad rows stay zero
        x[:n] = embeds
        cos, sin = self._rotary(x, positions, rows)  # (rows, 1, head_dim) each
        matmul = self.matmul
        for index, layer in enumerate(self.layers):
            attn: Any = layer.self_attn
            h = layer.input_layernorm(x)
            shape = (rows, 1, -1, attn.head_dim)
            q = matmul(h, attn.q_proj).view(shape).transpose(1, 2)  # (rows, H, 1, hd)
            k = matmul(h, attn.k_proj).view(shape).transpose(1, 2)  # (rows, Hkv, 1, hd)
            v = matmul(h, attn.v_proj).view(shape).transpose(1, 2)
            q, k = self.rotate(q, k, cos, sin)
            heads = x.new_zeros((rows, 1, q.shape[1] * attn.head_dim))  # (rows, 1, H*hd)
            for row, cache in enumerate(caches):
                # fresh tensors: a lone step's shapes, strides and alignment
                keys, values = cache.update(
                    k[row : row + 1].clone(), v[row : row + 1].clone(), index
                )
                out, _ = self.attention(
                    attn, q[row : row + 1].clone(), keys, values, None,
                    dropout=0.0, scaling=attn.scaling,
                )  # fmt: skip
                heads[row] = out.reshape(1, -1)
            x = x + matmul(heads, attn.o_proj)
            x = x + mlp(matmul, layer.mlp, layer.post_attention_layernorm(x))
        logits = matmul(self.norm(x), self.lm_head)  # (rows, 1, V)
        return logits[:n, 0]

    def _rotary(
        self, x: torch.Tensor, positions: Sequence[int], rows: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = x.device
        one = x[:1]  # the rotary reads only dtype and device from it
        parts = [self.rotary(one, torch.tensor([[p]], device=device)) for p in positions]
        if rows > len(positions):
            pad = self.rotary(one, torch.zeros((1, 1), dtype=torch.int64, device=device))
            parts += [pad] * (rows - len(positions))
        return torch.cat([c for c, _ in parts]), torch.cat([s for _, s in parts])


def mlp(matmul: Matmul, block: Any, x: torch.Tensor) -> torch.Tensor:
    """Llama/Qwen2 MLP, ``down(act(gate(x)) * up(x))``, with ``matmul`` for its projections."""
    gate = block.act_fn(matmul(x, block.gate_proj))
    return matmul(gate * matmul(x, block.up_proj), block.down_proj)


class OneByOneStep:
    """Each row through the model's own forward, one after another (exact, no shared reads)."""

    def __init__(self, forward: Callable[[torch.Tensor, Any, int], tuple[torch.Tensor, Any]],
                 reason: str) -> None:  # fmt: skip
        self.forward = forward  # (1, 1, D), cache, position → (V,) logits, cache (grown in place)
        self.description = f"{ONE_ROW}: {reason}"

    def __call__(
        self, embeds: torch.Tensor, caches: Sequence[Any], positions: Sequence[int]
    ) -> torch.Tensor:
        """(n, 1, D) → (n, V) logits, one forward per row."""
        out = []
        for row, (cache, position) in enumerate(zip(caches, positions, strict=True)):
            logits, grown = self.forward(embeds[row : row + 1].clone(), cache, position)
            if grown is not cache:  # transformers grows a Cache in place; a copy would be lost
                raise ConfigError(
                    f"{type(cache).__name__}: expected the forward to grow the cache in place"
                )
            out.append(logits)
        return torch.stack(out)


def build_step(
    model: Any,
    forward: Callable[[torch.Tensor, Any, int], tuple[torch.Tensor, Any]],
    max_rows: int,
) -> DecodeStep:
    """Return the row-block step with the first matmul and ladder that pass, else one by one."""
    reason = unsupported(model)
    if reason is not None:
        return OneByOneStep(forward, reason)
    table = model.get_input_embeddings()
    device, dtype = table.weight.device, table.weight.dtype
    layer: Any = model.model.layers[0]
    attn = layer.self_attn
    width = int(table.embedding_dim)
    matmuls: list[Matmul] = [PackedMatmul()] if PackedMatmul.available(device) else []
    matmuls.append(PlainMatmul())
    tried = []
    for matmul in matmuls:

        def project(linear: nn.Linear, m: Matmul = matmul) -> Callable[[torch.Tensor], Any]:
            return lambda x: m(x, linear)

        checked = (  # every position-wise part of a step; the other layers have the same shapes
            (layer.input_layernorm, width), (project(attn.q_proj), width),
            (project(attn.k_proj), width), (project(attn.v_proj), width),
            (project(attn.o_proj), int(attn.o_proj.in_features)),
            (layer.post_attention_layernorm, width),
            (lambda x, m=matmul: mlp(m, layer.mlp, x), width),
            (model.model.norm, width), (project(model.lm_head), width),
        )  # fmt: skip
        for ladder in ladders(max_rows):
            sizes = ladder.sizes(max_rows)
            try:
                passed = all(
                    row_invariant(f, w, sizes, device=device, dtype=dtype) for f, w in checked
                )
            except RuntimeError as err:  # e.g. oneDNN packs fp16 only with AVX-512 FP16
                tried.append(f"{matmul.name}: {err}")
                break
            if passed:
                parts = [f for f, _ in checked[-4:]]  # MLP, norms and LM head stand for a step
                chosen = quickest(ladder, max_rows, parts, width, device, dtype)
                if isinstance(matmul, PackedMatmul):
                    matmul.pack(linears(model))
                return RowBlockStep(model, matmul, chosen, device)
            tried.append(f"{matmul.name}, {ladder.describe()}")
    return OneByOneStep(
        forward, f"no row ladder keeps rows independent on {device} ({'; '.join(tried)})"
    )


def quickest(  # noqa: PLR0917 - the checked ladder and what to time it on
    passed: RowLadder,
    max_rows: int,
    parts: Sequence[Callable[[torch.Tensor], Any]],
    width: int,
    device: torch.device,
    dtype: torch.dtype,
) -> RowLadder:
    """Pick the fastest for a lone row among ``passed`` and the ladders its check covers.

    A ladder whose row counts are all among those ``passed`` was checked at gives the same bits,
    so only time decides, and kernels are not monotonic in rows (oneDNN here: 2 rows cost twice
    what 4 do). ``parts`` stand for a step; best of TIMED_RUNS runs each, in this thread's CPU
    time on a CPU (what others run on shared cores does not count).
    """
    covered = set(passed.sizes(max_rows))
    options = [passed] + [
        RowLadder(block=b)
        for b in BLOCKS
        if passed.block and b > passed.block and set(RowLadder(block=b).sizes(max_rows)) <= covered
    ]
    if len(options) == 1:
        return passed
    costs = {}
    clock = time.thread_time if device.type == "cpu" else time.perf_counter  # CPU: others' load
    with torch.inference_mode():
        for ladder in options:
            rows = torch.zeros(ladder.rows(1), 1, width, device=device, dtype=dtype)
            runs = []
            for _ in range(TIMED_RUNS):
                t0 = clock()
                for part in parts:
                    part(rows)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                runs.append(clock() - t0)
            costs[ladder] = min(runs)
    return min(options, key=lambda ladder: costs[ladder])


def linears(model: Any) -> list[nn.Linear]:
    """Every projection a step multiplies by (all layers and the LM head)."""
    out = [model.lm_head]
    for layer in model.model.layers:
        attn, block = layer.self_attn, layer.mlp
        out += [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj]
        out += [block.gate_proj, block.up_proj, block.down_proj]
    return out
