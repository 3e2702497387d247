"""balance.choose: least outstanding requests, per-replica limits, random ties."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from modelhost.balance import SCAN_LIMIT, Candidate, choose


def c(item: str, in_flight: int, limit: int = 1, ready: bool = True) -> Candidate[str]:
    return Candidate(item, in_flight, limit, ready)


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        pytest.param([], None, id="no-replicas"),
        pytest.param([c("a", 0)], "a", id="single-free"),
        pytest.param([c("a", 1)], None, id="single-full"),
        pytest.param([c("a", 0, ready=False)], None, id="single-not-ready"),
        pytest.param([c("a", 0, ready=False), c("b", 0, ready=False)], None, id="none-ready"),
        pytest.param([c("a", 3, 4), c("b", 1, 4), c("c", 2, 4)], "b", id="least-outstanding"),
        pytest.param([c("a", 0, ready=False), c("b", 3, 4)], "b", id="skips-not-ready"),
        pytest.param([c("a", 1, 1), c("b", 2, 4)], "b", id="full-replica-skipped-despite-fewer"),
        pytest.param([c("a", 2, 2), c("b", 4, 4)], None, id="all-full"),
    ],
)
def test_choice(candidates: list[Candidate[str]], expected: str | None) -> None:
    assert choose(candidates, random.Random(0)) == expected


def test_ties_are_shared() -> None:
    rng = random.Random(1)
    cands = [c("a", 1, 4), c("b", 1, 4), c("c", 1, 4), c("d", 3, 4)]
    picks = Counter(choose(cands, rng) for _ in range(3000))
    assert set(picks) == {"a", "b", "c"}
    assert min(picks.values()) > 800


def test_many_replicas_use_two_choices_among_eligible() -> None:
    rng = random.Random(2)
    cands = [c(f"r{i}", i % 3, 2) for i in range(SCAN_LIMIT + 10)]
    for _ in range(500):
        chosen = choose(cands, rng)
        assert chosen is not None
        assert int(chosen[1:]) % 3 != 2  # in_flight 2 == limit: never eligible
