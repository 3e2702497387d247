"""Replica choice: least outstanding requests, ties broken at random between two of the tied.

Pure: the caller passes every replica with its in-flight count and its concurrency limit, and the
random generator; nothing here reads a clock or keeps state.

A replica is *eligible* when it is ready and has a free slot (``in_flight < limit``). Among the
eligible, the one with the fewest outstanding requests wins, so a replica that answers slowly
stops receiving work. Equal replicas share load through power-of-two choices: two of the tied are
drawn at random and the first drawn is kept (for equal loads p2c reduces to a fair draw, and it
stays O(1) in the number of ties). Beyond :data:`SCAN_LIMIT` eligible replicas the full scan gives
way to plain power-of-two choices over the eligible, whose quality is within a small factor of the
scan at a fraction of its cost.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["SCAN_LIMIT", "Candidate", "choose"]

T = TypeVar("T")

SCAN_LIMIT = 32


@dataclass(frozen=True, slots=True)
class Candidate(Generic[T]):
    """A replica as the balancer sees it: the caller's item, its load and its limit."""

    item: T
    in_flight: int
    limit: int
    ready: bool = True

    @property
    def eligible(self) -> bool:
        return self.ready and self.in_flight < self.limit


def choose(candidates: Sequence[Candidate[T]], rng: random.Random) -> T | None:
    """The item of the least-loaded eligible candidate, or ``None`` when none is eligible."""
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        return None
    if len(eligible) == 1:
        return eligible[0].item
    if len(eligible) > SCAN_LIMIT:
        a, b = rng.sample(eligible, 2)
        return (a if a.in_flight <= b.in_flight else b).item
    least = min(c.in_flight for c in eligible)
    tied = [c for c in eligible if c.in_flight == least]
    if len(tied) == 1:
        return tied[0].item
    return rng.sample(tied, 2)[0].item
