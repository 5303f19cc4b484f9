"""From the ids a row has committed to text: end tokens, stop strings, streaming deltas.

    python -c "
    from diffucode.models.tokenizer import build_tiny_tokenizer
    from diffucode.serving.textstream import RowText
    tok = build_tiny_tokenizer(); r = RowText(tok, end_ids={tok.eos_token_id}, stops=['\\n\\n'], mask_id=-1)
    print(repr(r.update(tok('def f(x):').input_ids)), r.finish_reason)"

A diffusion model reveals tokens anywhere in its canvas, but never re-masks one, so the text
up to the first still-masked position is final: that *committed prefix* is what a stream sends
(for block-diffusion models it grows a block at a time; for whole-sequence models it grows
whenever the leftmost masks are filled). :class:`RowText` turns successive committed prefixes
into deltas that concatenate to exactly the final text: it cuts at the first end token and the
first stop string, and holds back text that could still change (the start of a stop string,
a half-decoded UTF-8 character).
"""

from __future__ import annotations

from typing import Iterable, Sequence


def committed_prefix(canvas: Sequence[int], mask_id: int) -> list[int]:
    """The ids before the first masked position."""
    out = []
    for t in canvas:
        if t == mask_id:
            break
        out.append(t)
    return out


def cut_at_end(ids: Sequence[int], end_ids: Iterable[int]) -> tuple[list[int], bool]:
    """(ids before the first end token, whether one was found)."""
    ends = set(end_ids)
    for i, t in enumerate(ids):
        if t in ends:
            return list(ids[:i]), True
    return list(ids), False


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:k]):
                hold = k
                break
    return hold


class RowText:
    """The text of one output row, updated from committed prefixes (streaming) or the final ids."""

    def __init__(self, tokenizer, end_ids: Iterable[int], stops: list[str], mask_id: int):
        self.tok = tokenizer
        self.end_ids = set(end_ids)
        self.stops = list(stops)
        self.mask_id = mask_id
        self.sent = ""  # text already handed out as deltas
        self.done = False
        self.finish_reason: str | None = None  # "stop" (end token or stop string) | "length"
        self.completion_tokens = 0  # generated tokens before the end token / stop string

    def _text(self, ids: list[int], final: bool) -> tuple[str, bool]:
        """(text to show so far, whether the row is finished)."""
        ids, ended = cut_at_end(ids, self.end_ids)
        text = self.tok.decode(ids, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in self.stops) if i != -1), default=-1)
        if cut != -1:
            self.finish_reason = "stop"
            self.completion_tokens = self._tokens_for(ids, text[:cut])
            return text[:cut], True
        if ended or final:
            self.finish_reason = "stop" if ended else "length"
            self.completion_tokens = len(ids)
            return text, True
        # not final: hold back what may still change
        if text.endswith("\ufffd"):
            text = text.rstrip("\ufffd")
        hold = _held_back(text, self.stops)
        return (text[:-hold] if hold else text), False

    def _tokens_for(self, ids: list[int], text: str) -> int:
        """The number of leading ids whose text covers ``text`` (usage count at a stop string)."""
        lo, hi = 0, len(ids)  # decoded length grows with k: binary search for the first k that covers it
        while lo < hi:
            mid = (lo + hi) // 2
            if len(self.tok.decode(ids[:mid], skip_special_tokens=True)) >= len(text):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def update(self, canvas: Sequence[int], final: bool = False) -> str:
        """Feed the row's completion canvas (masks included; the final ids when ``final``);
        returns the new text delta (possibly empty)."""
        if self.done:
            return ""
        ids = list(canvas) if final else committed_prefix(canvas, self.mask_id)
        text, done = self._text(ids, final)
        if done:
            self.done = True
        # if a longer prefix decoded differently before the end of what was sent (not seen with
        # byte-level BPE), what was sent stays sent and only text past it goes out
        delta = text[len(self.sent):]
        self.sent += delta
        return delta


def render_canvas(tokenizer, canvas: Sequence[int], mask_id: int, mask_char: str = "\u2591") -> str:
    """The whole canvas as text, each masked position shown as ``mask_char`` (for ``stream_canvas``)."""
    out, run = [], []
    for t in canvas:
        if t == mask_id:
            if run:
                out.append(tokenizer.decode(run, skip_special_tokens=False))
                run = []
            out.append(mask_char)
        else:
            run.append(t)
    if run:
        out.append(tokenizer.decode(run, skip_special_tokens=False))
    return "".join(out)
