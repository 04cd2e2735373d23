"""KV-prefix cache: several questions about one snapshot reuse the prefill of the shared prefix.

The prefix (system text + modality blocks, see :mod:`mm_ros.llm.assembly`) does not depend on
the question, so its keys and values are computed once and the next question prefills only its
own tokens. Entries are keyed by the caller's key (e.g. the snapshot id), the prefix length and a
hash of the prefix embeddings, so a changed block can never hit a stale entry. Stored caches are
never handed out: a hit returns a deep copy, because decoding appends to the cache it is given.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Hashable

PrefixKey = tuple[Any, int, str]  # (caller's key, prefix length, sha256 of the prefix rows)


def prefix_digest(embeds: torch.Tensor) -> str:
    """Hex SHA-256 of (1, P, D) prefix embeddings (dtype, shape and values)."""
    rows = embeds.detach()
    digest = hashlib.sha256(f"{rows.dtype}{tuple(rows.shape)}".encode())
    # bytes of the raw storage: bfloat16 has no numpy dtype, so view it as int16 first
    flat = rows.contiguous().reshape(-1)
    if flat.element_size() == 2:  # noqa: PLR2004 - 16-bit floats
        flat = flat.view(torch.int16)
    digest.update(flat.cpu().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """Counters for diagnostics."""

    hits: int
    misses: int
    entries: int


class PrefixCache:
    """LRU of prefill caches (transformers ``Cache`` objects); the oldest go past ``max_entries``.

    Thread-safe: lookups and stores take a lock; copies are made outside the model's forward.
    """

    def __init__(self, max_entries: int = 4) -> None:
        if max_entries < 1:
            raise ConfigError(f"prefix cache max_entries must be >= 1, found {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[PrefixKey, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(prefix_key: Hashable, embeds: torch.Tensor, prefix_len: int) -> PrefixKey:
        """Return the entry key of the first ``prefix_len`` rows of (1, T, D) ``embeds``."""
        return (prefix_key, prefix_len, prefix_digest(embeds[:, :prefix_len]))

    def get(self, key: PrefixKey) -> Any | None:
        """Return a private copy of the cache stored under ``key`` (counts a hit), else None."""
        with self._lock:
            stored = self._entries.get(key)
            if stored is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return copy.deepcopy(stored)

    def put(self, key: PrefixKey, cache: Any) -> None:
        """Store a copy of ``cache`` under ``key``; the caller may go on appending to its own."""
        stored = copy.deepcopy(cache)
        with self._lock:
            self._entries[key] = stored
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry (e.g. when the model is unloaded)."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        """Hits, misses and entries so far."""
        with self._lock:
            return CacheStats(self.hits, self.misses, len(self._entries))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
