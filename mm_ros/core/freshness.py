"""Which modalities an answer used stale data for, or had none of: the answer's warnings.

A sensor driver or an adapter node that stops does not stop the questions: the service answers
from what it still holds. The asker must then hear which modality is old and by how much (or
missing), else a robot acts on a picture from a minute ago as if it were now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mm_ros.core.errors import InvalidValueError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

NS_PER_S = 1_000_000_000


def freshness_warnings(
    wanted: Sequence[str],
    newest_ns: Mapping[str, int],
    reference_ns: int,
    stale_after_s: float,
    sources: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """One line per modality in ``wanted`` that had no data, or data older than allowed.

    ``newest_ns``: stamp of the newest sample used per modality; ``reference_ns``: the
    question's stamp, or now; ``sources``: where a modality's data came from (e.g. ``remote
    camera_adapter``), named in the line.
    """
    out = []
    for modality in wanted:
        if modality not in newest_ns:
            out.append(f"{modality}: no data, left out of the answer")
            continue
        age_s = (reference_ns - newest_ns[modality]) / NS_PER_S
        if age_s > stale_after_s:
            source = (sources or {}).get(modality)
            via = f" from {source}" if source else ""
            out.append(
                f"{modality}: newest data{via} is {age_s:.1f} s old (stale after "
                f"{stale_after_s:g} s)"
            )
    return tuple(out)


def require_near_clock(
    stamp_ns: int, now_ns: int, max_offset_s: float, what: str, *, behind_too: bool
) -> int:
    """Return ``stamp_ns``; raise `InvalidValueError` if it is too far from the node's clock.

    One sample stamped in 2038 or 1970 (a driver bug, a clock not yet synced) would otherwise
    make the time windows take it for a clock jump and drop the history they hold. A stamp
    further ahead than ``max_offset_s`` is always refused; one further behind only with
    ``behind_too`` (the stream is live: its newest data is near the clock), so a recording
    replayed without sim time still plays. Off when ``max_offset_s`` is 0 or the clock is not
    running yet (sim time before the first /clock).
    """
    if max_offset_s <= 0 or now_ns <= 0:
        return stamp_ns
    offset_s = (stamp_ns - now_ns) / NS_PER_S
    if offset_s > max_offset_s or (behind_too and -offset_s > max_offset_s):
        where = "ahead of" if offset_s > 0 else "behind"
        raise InvalidValueError(
            f"{what} header stamp {stamp_ns / NS_PER_S:.3f} s is {abs(offset_s):.1f} s {where} "
            f"this node's clock (at most {max_offset_s:g} s, max_clock_offset_s): clocks out of "
            "sync, or a broken driver",
            field="header.stamp",
            expected=f"within {max_offset_s:g} s of {now_ns / NS_PER_S:.3f} s",
            found=stamp_ns,
        )
    return stamp_ns
