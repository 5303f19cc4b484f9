"""AR-ness of a decoding order: how left-to-right a diffusion model writes (DiffuCoder section 4.1).

    python -c "from diffucode.analysis import local_arness, global_arness; \
print(local_arness([0, 1, 2, 5, 3, 4], 1), global_arness([0, 1, 2, 5, 3, 4], 1))"

An *order* is the list of completion positions revealed at steps ``1..T``, one token per
step: ``order[t-1] = p_t`` (0-based positions inside the completion, all distinct; normally a
permutation of ``0..L-1``). The engine (``diffucode.sampling.generate``) returns the other
view, the step at which each position was revealed; :func:`reveal_steps_to_positions`
converts it.

Definitions (docs/ALGORITHMS.md section 5):

* **Local AR-ness@k**: the fraction of steps ``t`` at which the ``k`` previously revealed
  positions are exactly ``p_t - 1, ..., p_t - k``, i.e. ``p_{t-j} = p_t - j`` for
  ``j = 1..k``: the new token continues a left-to-right run of length ``k``.
* **Global AR-ness@k**: the fraction of steps ``t`` at which ``p_t`` is among the ``k``
  left-most positions still masked just before step ``t``.

**The ``t <= k`` convention** (the paper leaves it open). Local AR-ness needs ``k`` earlier
reveals, which steps ``t <= k`` do not have. Here the prompt counts as an arbitrarily long
left-to-right run revealed before step 1: the history is extended with virtual reveals
``p_0 = -1, p_{-1} = -2, ...`` (the prompt's last token sits at position -1, the one
before it at -2, ...). So a step-1 reveal of position 0 continues a run of unbounded
length, and at step ``t <= k`` the check ``p_{t-j} = p_t - j`` runs over the ``t-1`` real
reveals and then the prompt. Consequences, all tested:

* every step counts (the denominator is ``T`` for every ``k``);
* pure left-to-right decoding scores exactly 1.0 for every ``k``;
* right-to-left decoding scores 0 (for ``T >= 2``);
* local AR-ness is non-increasing in ``k`` (a run of length ``k+1`` is a run of length ``k``).

Global AR-ness needs no convention: when fewer than ``k`` positions are still masked, all of
them are among the ``k`` left-most, so the step counts. It is non-decreasing in ``k`` and is
1.0 for every ``k >= T``. The "still masked" set is the positions listed in ``order`` that
have not been revealed yet (positions absent from ``order`` are ignored).

Batches: :func:`arness_stats` gives the per-order values with their mean and *population*
variance (``ddof=0``), which is what "variance of AR-ness over samples" means here.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np

Ties = Literal["error", "left_to_right", "random"]


def _as_int_list(x: Any, what: str) -> list[int]:
    """Accept a list, tuple, numpy array or (CPU or CUDA) torch tensor of ints."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D (one row), got shape {tuple(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{what} must hold integers, got dtype {arr.dtype}")
    return [int(v) for v in arr.tolist()]


def _check_order(order: Any) -> list[int]:
    pos = _as_int_list(order, "order")
    if not pos:
        raise ValueError("order is empty: AR-ness needs at least one revealed position")
    if min(pos) < 0:
        raise ValueError(f"order holds a negative position ({min(pos)}); positions are 0-based in the completion")
    if len(set(pos)) != len(pos):
        seen: set[int] = set()
        dup = -1
        for p in pos:
            if p in seen:
                dup = p
                break
            seen.add(p)
        raise ValueError(
            f"order reveals position {dup} twice; an order lists each position once "
            "(did you pass reveal steps? use reveal_steps_to_positions)"
        )
    return pos


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def run_lengths(order: Sequence[int]) -> list[float]:
    """``r_t``: how many reveals immediately before step ``t`` form the run ``p_t-1, p_t-2, ...``.

    ``r_t = r_{t-1} + 1`` if ``p_{t-1} = p_t - 1`` else 0, and ``r_1 = inf`` when ``p_1 = 0``
    (the prompt is an unbounded run ending at position -1; see the module docstring).
    Local AR-ness@k is the fraction of steps with ``r_t >= k``.
    """
    pos = _check_order(order)
    runs: list[float] = []
    prev, r = -1, math.inf  # virtual step 0: the prompt, ending at position -1
    for p in pos:
        r = r + 1 if prev == p - 1 else 0
        runs.append(r)
        prev = p
    return runs


def masked_ranks(order: Sequence[int]) -> np.ndarray:
    """``rank_t``: how many still-masked positions lie left of ``p_t`` just before step ``t``.

    Those are the positions revealed *later* than ``t`` but lying left of ``p_t``.
    Global AR-ness@k is the fraction of steps with ``rank_t < k``. O(T^2) memory in bools,
    fine for the completion lengths used here (T = 1024 is 1 MB).
    """
    pos = np.asarray(_check_order(order), dtype=np.int64)  # [T]
    later = np.triu(np.ones((pos.size, pos.size), dtype=bool), k=1)  # [T, T] s revealed after t
    left = pos[None, :] < pos[:, None]  # [T, T] p_s < p_t
    return (later & left).sum(axis=1)  # [T]


def local_arness(order: Sequence[int], k: int = 1) -> float:
    """Local AR-ness@k of one order in [0, 1] (see the module docstring for ``t <= k``)."""
    k = _check_k(k)
    runs = run_lengths(order)
    return sum(r >= k for r in runs) / len(runs)


def global_arness(order: Sequence[int], k: int = 1) -> float:
    """Global AR-ness@k of one order in [0, 1]: fraction of steps that pick a k-left-most mask."""
    k = _check_k(k)
    ranks = masked_ranks(order)
    return float((ranks < k).mean())


def arness_curve(order: Sequence[int], ks: Iterable[int]) -> dict[str, dict[int, float]]:
    """Both metrics for several ``k`` at once (one pass over the order)."""
    ks = [_check_k(k) for k in ks]
    runs = np.asarray(run_lengths(order), dtype=float)
    ranks = masked_ranks(order)
    return {
        "local": {k: float((runs >= k).mean()) for k in ks},
        "global": {k: float((ranks < k).mean()) for k in ks},
    }


@dataclass
class ArnessStats:
    """AR-ness@k over a batch of orders: per-order values, their mean and population variance."""

    kind: str
    k: int
    values: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def var(self) -> float:
        return float(np.var(self.values))  # ddof=0

    @property
    def std(self) -> float:
        return float(np.std(self.values))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "k": self.k, "mean": self.mean, "var": self.var, "n": len(self.values)}


def arness_stats(orders: Iterable[Sequence[int]], k: int = 1, kind: Literal["local", "global"] = "local") -> ArnessStats:
    """AR-ness@k of each order in a batch, with mean and variance (``ddof=0``)."""
    fns = {"local": local_arness, "global": global_arness}
    if kind not in fns:
        raise ValueError(f"kind must be 'local' or 'global', got {kind!r}")
    values = [fns[kind](o, k) for o in orders]
    if not values:
        raise ValueError("arness_stats needs at least one order")
    return ArnessStats(kind=kind, k=_check_k(k), values=values)


def local_arness_batch(orders: Iterable[Sequence[int]], k: int = 1) -> ArnessStats:
    return arness_stats(orders, k, "local")


def global_arness_batch(orders: Iterable[Sequence[int]], k: int = 1) -> ArnessStats:
    return arness_stats(orders, k, "global")


def reveal_steps_to_positions(
    reveal_steps: Sequence[int], ties: Ties = "error", seed: int = 0
) -> list[int]:
    """Turn the engine's "step at which each position was revealed" ``[L]`` into an order.

    ``reveal_steps[j] = s`` means position ``j`` was revealed at forward pass ``s`` (1-based).
    Positions with ``s < 1`` are treated as never revealed and left out. Steps that reveal
    nothing are skipped (the remaining steps are renumbered), since they do not change who
    came before whom.

    A step that reveals several tokens has no order among them; AR-ness assumes one token per
    step. ``ties`` says what to do:

    * ``"error"``: raise ``ValueError`` naming the step (decode with ``steps = max_new_tokens``);
    * ``"left_to_right"``: list them left to right, as consecutive steps. This favours
      AR-ness (a 2-token step adds one left-to-right pair);
    * ``"random"``: list them in a random order (``random.Random(seed)``), neutral on average.

    The reference Dream schedule with ``steps == max_new_tokens`` reveals ``[0, 1, ..., 1, 2]``
    tokens per step (docs/ALGORITHMS.md section 2), so its last step always has two tokens: use a
    tie rule other than ``"error"`` for it, or count multi-token steps with
    :func:`count_multi_reveal_steps`.
    """
    steps = _as_int_list(reveal_steps, "reveal_steps")
    by_step: dict[int, list[int]] = {}
    for j, s in enumerate(steps):
        if s >= 1:
            by_step.setdefault(s, []).append(j)
    if ties not in ("error", "left_to_right", "random"):
        raise ValueError(f"ties must be 'error', 'left_to_right' or 'random', got {ties!r}")
    rng = random.Random(seed)
    order: list[int] = []
    for s in sorted(by_step):
        group = by_step[s]  # already left to right
        if len(group) > 1:
            if ties == "error":
                raise ValueError(
                    f"step {s} reveals {len(group)} tokens (positions {group[:8]}{'...' if len(group) > 8 else ''}); "
                    "AR-ness needs one token per step: decode with steps = max_new_tokens, "
                    "or pass ties='left_to_right' / 'random'"
                )
            if ties == "random":
                group = group[:]
                rng.shuffle(group)
        order.extend(group)
    return order


def count_multi_reveal_steps(reveal_steps: Sequence[int]) -> int:
    """How many steps reveal more than one token (0 for strict one-token-per-step decoding)."""
    steps = [s for s in _as_int_list(reveal_steps, "reveal_steps") if s >= 1]
    counts: dict[int, int] = {}
    for s in steps:
        counts[s] = counts.get(s, 0) + 1
    return sum(1 for c in counts.values() if c > 1)


def positions_to_reveal_steps(order: Sequence[int], length: int | None = None) -> list[int]:
    """The inverse view: ``out[p] = t`` (1-based) for ``p = order[t-1]``; 0 for unrevealed positions."""
    pos = _check_order(order)
    length = max(pos) + 1 if length is None else length
    if max(pos) >= length:
        raise ValueError(f"order holds position {max(pos)} but length is {length}")
    out = [0] * length
    for t, p in enumerate(pos, start=1):
        out[p] = t
    return out
