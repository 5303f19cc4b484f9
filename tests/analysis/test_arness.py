"""AR-ness metrics: hand-worked cases, the t <= k convention, properties on random orders, and
the fast implementation against a direct transcription of the definitions."""
import random

import numpy as np
import pytest
import torch

from diffucode.analysis import (
    arness_curve,
    arness_stats,
    count_multi_reveal_steps,
    global_arness,
    global_arness_batch,
    local_arness,
    local_arness_batch,
    positions_to_reveal_steps,
    reveal_steps_to_positions,
)


def ref_local(order, k):
    """Definition, literally: step t counts iff p_{t-j} == p_t - j for j = 1..k, where the
    history before step 1 is the prompt: p_s = s - 1 for s <= 0 (positions -1, -2, ...)."""
    p = {t: pos for t, pos in enumerate(order, start=1)}
    hits = 0
    for t in range(1, len(order) + 1):
        ok = all((p[t - j] if t - j >= 1 else t - j - 1) == p[t] - j for j in range(1, k + 1))
        hits += ok
    return hits / len(order)


def ref_global(order, k):
    """Definition, literally: p_t is among the k smallest positions still masked before step t."""
    masked = set(order)
    hits = 0
    for p in order:
        hits += p in sorted(masked)[:k]
        masked.remove(p)
    return hits / len(order)


@pytest.mark.parametrize("L", [1, 2, 5, 17])
def test_left_to_right_is_one_for_every_k(L):
    order = list(range(L))
    for k in range(1, L + 4):
        assert local_arness(order, k) == 1.0
        assert global_arness(order, k) == 1.0


@pytest.mark.parametrize("L", [2, 5, 17])
def test_right_to_left(L):
    order = list(range(L))[::-1]
    for k in range(1, L + 3):
        assert local_arness(order, k) == 0.0
        # step t picks the right-most of L-t+1 masked positions: rank L-t, counted iff L-t < k
        assert global_arness(order, k) == pytest.approx(min(k, L) / L)


def test_hand_built_order():
    order = [0, 1, 2, 5, 3, 4]
    # run lengths r_t: inf (0 follows the prompt), inf, inf, 0 (5 after 2), 0 (3 after 5), 1 (4 after 3)
    assert local_arness(order, 1) == pytest.approx(4 / 6)
    assert local_arness(order, 2) == pytest.approx(3 / 6)
    assert local_arness(order, 3) == pytest.approx(3 / 6)
    # masked ranks: 0, 0, 0, 2 (5 among {3,4,5}), 0, 0
    assert global_arness(order, 1) == pytest.approx(5 / 6)
    assert global_arness(order, 2) == pytest.approx(5 / 6)
    assert global_arness(order, 3) == 1.0
    curve = arness_curve(order, [1, 2, 3])
    assert curve["local"] == pytest.approx({1: 4 / 6, 2: 3 / 6, 3: 3 / 6})
    assert curve["global"] == pytest.approx({1: 5 / 6, 2: 5 / 6, 3: 1.0})


def test_t_le_k_convention_prompt_is_a_run_only_before_step_1():
    # [1, 0, 2, 3]: step 1 reveals 1, which does not follow the prompt (-1 != 0); step 2 reveals
    # 0 after 1: the prompt is not "the previous reveal" any more; only step 4 (3 after 2) counts.
    assert local_arness([1, 0, 2, 3], 1) == pytest.approx(1 / 4)
    assert local_arness([1, 0, 2, 3], 2) == 0.0
    # [3, 4, 5, 0, 1, 2]: runs 0, 1, 2, 0, 1, 2 -- revealing 0 at step 4 does not continue the prompt
    order = [3, 4, 5, 0, 1, 2]
    assert [local_arness(order, k) for k in (1, 2, 3)] == pytest.approx([4 / 6, 2 / 6, 0.0])
    # steps t <= k with a left-to-right start: the t-1 real reveals plus the prompt make the run,
    # so all 3 steps count even for k = 10 (denominator is T for every k)
    assert local_arness([0, 1, 2], 10) == 1.0
    assert local_arness([0, 2, 1], 10) == pytest.approx(1 / 3)


def test_against_reference_and_properties_on_random_orders():
    rng = random.Random(0)
    for _ in range(60):
        L = rng.randint(1, 24)
        order = list(range(L))
        rng.shuffle(order)
        if rng.random() < 0.3:  # mostly-left-to-right orders exercise long runs
            order = sorted(order[: L // 2]) + order[L // 2 :]
        loc = [local_arness(order, k) for k in range(1, L + 3)]
        glo = [global_arness(order, k) for k in range(1, L + 3)]
        assert loc == pytest.approx([ref_local(order, k) for k in range(1, L + 3)])
        assert glo == pytest.approx([ref_global(order, k) for k in range(1, L + 3)])
        assert all(0.0 <= v <= 1.0 for v in loc + glo)
        assert all(a >= b for a, b in zip(loc, loc[1:])), "local AR-ness must not increase with k"
        assert all(a <= b for a, b in zip(glo, glo[1:])), "global AR-ness must not decrease with k"
        assert glo[L - 1] == 1.0  # k >= T: every masked position is among the k left-most


def test_order_need_not_start_at_zero_and_accepts_tensors():
    # a subset of positions: "still masked" means the listed positions not yet revealed
    assert global_arness([7, 3, 5], 1) == pytest.approx(2 / 3)
    assert local_arness(torch.tensor([0, 1, 2]), 2) == 1.0
    assert global_arness(np.array([2, 1, 0]), 1) == pytest.approx(1 / 3)


def test_batch_stats():
    orders = [[0, 1, 2, 3], [3, 2, 1, 0], [0, 2, 1, 3]]
    # local@1: 1.0, 0.0, 0.25 (only step 1: 0 follows the prompt; 3 after 1 does not count)
    st = local_arness_batch(orders, 1)
    assert st.values == pytest.approx([1.0, 0.0, 0.25])
    assert st.mean == pytest.approx(1.25 / 3)
    assert st.var == pytest.approx(np.var([1.0, 0.0, 0.25]))  # population variance
    assert st.to_dict()["n"] == 3
    g = global_arness_batch(orders, 1)
    assert g.values == pytest.approx([1.0, 0.25, 0.75])
    assert arness_stats(orders, 2, "global").values == pytest.approx([1.0, 0.5, 1.0])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: local_arness([0, 1], 0), "k must be an integer >= 1"),
        (lambda: global_arness([0, 1], 1.5), "k must be an integer >= 1"),
        (lambda: local_arness([0, 1, 1], 1), "reveals position 1 twice"),
        (lambda: local_arness([], 1), "order is empty"),
        (lambda: local_arness([[0, 1]], 1), "must be 1-D"),
        (lambda: global_arness([-1, 0], 1), "negative position"),
        (lambda: arness_stats([[0]], 1, "sideways"), "kind must be"),
        (lambda: arness_stats([], 1), "at least one order"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_reveal_steps_to_positions():
    # position j revealed at step s: [3, 1, 2] -> step 1 reveals 1, step 2 reveals 2, step 3 reveals 0
    assert reveal_steps_to_positions([3, 1, 2]) == [1, 2, 0]
    assert reveal_steps_to_positions(torch.tensor([3, 1, 2])) == [1, 2, 0]
    # empty steps are skipped; steps < 1 mean "never revealed"
    assert reveal_steps_to_positions([5, 2, 0, 9]) == [1, 0, 3]
    order = [4, 0, 3, 1, 2]
    assert reveal_steps_to_positions(positions_to_reveal_steps(order)) == order
    assert positions_to_reveal_steps([2, 0], length=4) == [2, 0, 1, 0]


def test_multi_token_steps():
    steps = [2, 2, 1, 3, 3, 3]  # step 2 reveals positions 0 and 1, step 3 reveals 3, 4, 5
    with pytest.raises(ValueError, match="step 2 reveals 2 tokens"):
        reveal_steps_to_positions(steps)
    assert reveal_steps_to_positions(steps, ties="left_to_right") == [2, 0, 1, 3, 4, 5]
    r1 = reveal_steps_to_positions(steps, ties="random", seed=1)
    assert r1 == reveal_steps_to_positions(steps, ties="random", seed=1)  # deterministic
    assert r1[0] == 2 and sorted(r1[1:3]) == [0, 1] and sorted(r1[3:]) == [3, 4, 5]
    assert count_multi_reveal_steps(steps) == 2
    # the reference Dream schedule at steps == L: [0, 1, ..., 1, 2] tokens per step
    L = 6
    ref = [2, 3, 4, 5, 6, 6]
    assert count_multi_reveal_steps(ref) == 1
    assert local_arness(reveal_steps_to_positions(ref, ties="left_to_right"), 1) == 1.0
    with pytest.raises(ValueError, match="ties must be"):
        reveal_steps_to_positions(ref, ties="sorted")
    assert len(reveal_steps_to_positions(ref, ties="random")) == L
