"""Committed prefixes -> text deltas: stop strings, end tokens, held-back text."""

from diffucode.models.tokenizer import build_tiny_tokenizer
from diffucode.serving.textstream import RowText, committed_prefix, render_canvas

M = -7  # a mask id no real token has


def _row(tok, stops=()):
    return RowText(tok, end_ids={tok.eos_token_id}, stops=list(stops), mask_id=M)


def test_committed_prefix_stops_at_the_first_mask():
    assert committed_prefix([4, 5, M, 6, M], M) == [4, 5]
    assert committed_prefix([M, 5], M) == []


def test_deltas_concatenate_to_the_final_text_and_hold_back_a_possible_stop():
    tok = build_tiny_tokenizer()
    ids = tok("def add(a, b):\n    return a + b\n").input_ids
    r = _row(tok, stops=["\n    return"])
    pieces = []
    for k in range(1, len(ids) + 1):  # the prefix grows one token at a time, masks after it
        pieces.append(r.update(ids[:k] + [M] * (len(ids) - k)))
        if r.done:
            break
    assert "".join(pieces) == "def add(a, b):"
    assert r.done and r.finish_reason == "stop"
    # while "\n" (the start of the stop string) was committed, it was never sent
    assert all(not p.endswith("\n") for p in pieces)


def test_end_token_finishes_and_counts_tokens():
    tok = build_tiny_tokenizer()
    ids = tok("x = 1").input_ids
    r = _row(tok)
    assert r.update(ids + [tok.eos_token_id, M, M]) == "x = 1"
    assert r.done and r.finish_reason == "stop" and r.completion_tokens == len(ids)
    assert r.update(ids + [tok.eos_token_id, 5, 5]) == ""  # nothing after the end


def test_length_when_the_canvas_fills_without_an_end():
    tok = build_tiny_tokenizer()
    ids = tok("x = 1").input_ids
    r = _row(tok)
    assert r.update(ids, final=True) == "x = 1"
    assert r.finish_reason == "length" and r.completion_tokens == len(ids)


def test_half_a_utf8_character_is_held_back():
    tok = build_tiny_tokenizer()
    ids = tok("é").input_ids  # byte-level BPE: é is two bytes
    assert len(ids) >= 2
    r = _row(tok)
    assert r.update(ids[:1] + [M]) == ""
    assert r.update(ids, final=True) == "é"


def test_render_canvas_marks_masks():
    tok = build_tiny_tokenizer()
    ids = tok("ab").input_ids
    assert render_canvas(tok, ids + [M, M], M) == tok.decode(ids) + "\u2591\u2591"
