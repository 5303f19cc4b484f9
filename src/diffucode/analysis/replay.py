"""A self-contained HTML page that replays a completion being written step by step.

    python -c "from diffucode.analysis.replay import write_replay_html; \
write_replay_html('replay.html', ['def', ' f', '():', '\\n', '    return', ' 1'], [2, 1, 3, 6, 4, 5], prompt='# demo\\n')"

Open the file in any browser: no network, no external scripts or styles. The page holds the
prompt, the completion's token strings and the step at which each was revealed as one JSON
blob, and a small script that draws the completion at a chosen step: tokens revealed so
far in a colour that encodes their reveal step (early = dark blue, late = yellow, the
viridis-like ramp of the PNG heat map), tokens still masked as grey placeholders. Controls:
play/pause, a step slider, step back/forward and a speed selector. The page opens at the first
frame (step 1); ``page.html#step=N`` opens it at step ``N``; ``page.html#play`` starts playing at once.

Token text is never written into the HTML as markup: it travels inside JSON (with ``<``, ``>``
and ``&`` escaped as ``\\u003c`` ... so ``</script>`` in a completion cannot end the script
block) and is put on the page with ``textContent``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

__all__ = ["render_replay_html", "write_replay_html", "token_strings", "replay_data"]


def token_strings(tok: Any, ids: Sequence[int]) -> list[str]:
    """The text each token adds, so that ``"".join(token_strings(tok, ids)) == tok.decode(ids)``.

    Byte-level BPE splits some characters over several tokens; decoding token by token would
    print replacement characters, so each piece is the growth of the decoded prefix (the
    character goes to the token that completes it). Falls back to per-token decoding where a
    prefix does not extend the previous one.
    """
    ids = [int(i) for i in ids]
    pieces: list[str] = []
    emitted = ""
    for i in range(len(ids)):
        text = tok.decode(ids[: i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if i < len(ids) - 1:
            # trailing U+FFFD = the bytes of a character still incomplete: wait for the rest
            text = text.rstrip("\ufffd")
        if text.startswith(emitted):
            pieces.append(text[len(emitted):])
        else:
            pieces.append(tok.decode([ids[i]], skip_special_tokens=False, clean_up_tokenization_spaces=False))
        emitted = text
    return pieces


def replay_data(
    tokens: Sequence[str], reveal_steps: Sequence[int], prompt: str = "", title: str = "", meta: dict | None = None
) -> dict:
    """Check and bundle what the page shows. ``reveal_steps[i] >= 1`` is the step token ``i`` appeared."""
    tokens = [str(t) for t in tokens]
    steps = [int(s) for s in (reveal_steps.tolist() if hasattr(reveal_steps, "tolist") else reveal_steps)]
    if len(tokens) != len(steps):
        raise ValueError(f"tokens ({len(tokens)}) and reveal_steps ({len(steps)}) must have the same length")
    if any(s < 1 for s in steps):
        bad = next(i for i, s in enumerate(steps) if s < 1)
        raise ValueError(f"reveal_steps[{bad}] = {steps[bad]}; every shown token needs a reveal step >= 1")
    return {
        "title": str(title),
        "prompt": str(prompt),
        "tokens": tokens,
        "steps": steps,
        "num_steps": max(steps, default=0),
        "meta": dict(meta or {}),
    }


def _json_for_script(obj: Any) -> str:
    # Safe inside <script type="application/json">: no '<', '>' or '&' survive, so neither
    # "</script>" nor "<!--" can appear; JSON.parse restores the characters.
    text = json.dumps(obj, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
h1 { font-size: 1.2em; }
#controls { display: flex; gap: .6em; align-items: center; flex-wrap: wrap; margin-bottom: 1em; }
#slider { width: 28em; }
#code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 14px; line-height: 1.55;
        white-space: pre-wrap; background: #fff; border: 1px solid #ccc; padding: 1em; border-radius: 6px; }
.prompt { color: #666; }
.tok { border-radius: 2px; }
.mask { background: #ddd; color: #999; }
.new { outline: 2px solid #e4572e; }
#legend { display: flex; align-items: center; gap: .5em; margin-top: .8em; font-size: .85em; }
#ramp { width: 16em; height: .9em; border: 1px solid #aaa; }
#meta { font-size: .85em; color: #555; margin-top: .8em; white-space: pre-wrap; }
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("replay-data").textContent);
  var tokens = data.tokens, steps = data.steps, T = data.num_steps;
  var MASK = "\u2591";  // light shade block: one per masked token
  // viridis-like ramp: step 1 dark blue ... last step yellow
  var STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function colour(step) {
    var x = T > 1 ? (step - 1) / (T - 1) : 0, seg = Math.min(STOPS.length - 2, Math.floor(x * (STOPS.length - 1)));
    var f = x * (STOPS.length - 1) - seg, a = STOPS[seg], b = STOPS[seg + 1], c = [0, 1, 2].map(function (i) {
      return Math.round(a[i] + f * (b[i] - a[i]));
    });
    return c;
  }
  function css(c) { return "rgb(" + c.join(",") + ")"; }
  function textColour(c) { return (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) > 140 ? "#000" : "#fff"; }

  var code = document.getElementById("code");
  var promptSpan = document.createElement("span");
  promptSpan.className = "prompt";
  promptSpan.textContent = data.prompt;
  code.appendChild(promptSpan);
  var spans = tokens.map(function (t, i) {
    var s = document.createElement("span");
    s.className = "tok";
    s.title = "position " + i + ", revealed at step " + steps[i];
    code.appendChild(s);
    return s;
  });

  var slider = document.getElementById("slider"), label = document.getElementById("step-label");
  var playBtn = document.getElementById("play"), speed = document.getElementById("speed");
  slider.max = T;
  var current = -1, timer = null;

  function show(step) {
    step = Math.max(0, Math.min(T, step));
    current = step;
    slider.value = step;
    var shown = 0;
    for (var i = 0; i < tokens.length; i++) {
      var s = spans[i];
      if (steps[i] <= step) {
        var c = colour(steps[i]);
        s.textContent = tokens[i];
        s.className = "tok" + (steps[i] === step ? " new" : "");
        s.style.background = css(c);
        s.style.color = textColour(c);
        shown++;
      } else {
        s.textContent = MASK;
        s.className = "tok mask";
        s.style.background = "";
        s.style.color = "";
      }
    }
    label.textContent = "step " + step + " / " + T + "  (" + shown + " of " + tokens.length + " tokens)";
  }
  function stop() { if (timer !== null) { clearInterval(timer); timer = null; } playBtn.textContent = "Play"; }
  function play() {
    if (current >= T) show(0);
    playBtn.textContent = "Pause";
    timer = setInterval(function () {
      if (current >= T) { stop(); return; }
      show(current + 1);
    }, Number(speed.value));
  }
  playBtn.addEventListener("click", function () { if (timer === null) play(); else stop(); });
  document.getElementById("back").addEventListener("click", function () { stop(); show(current - 1); });
  document.getElementById("fwd").addEventListener("click", function () { stop(); show(current + 1); });
  slider.addEventListener("input", function () { stop(); show(Number(slider.value)); });
  speed.addEventListener("change", function () { if (timer !== null) { stop(); play(); } });

  var ramp = document.getElementById("ramp"), grad = [];
  for (var k = 0; k <= 10; k++) grad.push(css(colour(1 + k * Math.max(T - 1, 0) / 10)));
  ramp.style.background = "linear-gradient(to right," + grad.join(",") + ")";
  document.getElementById("ramp-max").textContent = "step " + T;
  var metaLines = Object.keys(data.meta).map(function (k) { return k + ": " + JSON.stringify(data.meta[k]); });
  document.getElementById("meta").textContent = metaLines.join("\n");
  window.replay = { show: show, play: play, stop: stop, numSteps: T, current: function () { return current; } };
  // opens at the first frame (step 1: the first token revealed), Play runs the rest;
  // page.html#step=N opens at step N (0: everything masked); page.html#play starts playing
  var m = /step=(\d+)/.exec(location.hash);
  show(m ? Number(m[1]) : Math.min(1, T));
  if (/play/.test(location.hash)) play();
})();
"""


def render_replay_html(
    tokens: Sequence[str],
    reveal_steps: Sequence[int],
    prompt: str = "",
    title: str = "diffucode: decoding replay",
    meta: dict | None = None,
) -> str:
    """The page as a string. ``tokens[i]`` is shown once the slider reaches ``reveal_steps[i]``.

    ``meta`` (model, alg, temperature, ...) is printed under the code, as JSON values.
    """
    data = replay_data(tokens, reveal_steps, prompt=prompt, title=title, meta=meta)
    t = html.escape(data["title"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{t}</h1>
<div id="controls">
  <button id="play" type="button">Play</button>
  <button id="back" type="button" aria-label="previous step">&#9664;</button>
  <input id="slider" type="range" min="0" max="{data['num_steps']}" value="0" step="1" aria-label="step">
  <button id="fwd" type="button" aria-label="next step">&#9654;</button>
  <label>speed <select id="speed">
    <option value="400">slow</option><option value="120" selected>normal</option><option value="30">fast</option>
  </select></label>
  <span id="step-label"></span>
</div>
<div id="code"></div>
<div id="legend">revealed at: <span>step 1</span><span id="ramp"></span><span id="ramp-max"></span>
  <span class="tok mask">&#9617;</span> still masked</div>
<div id="meta"></div>
<script type="application/json" id="replay-data">{_json_for_script(data)}</script>
<script>{_JS}</script>
</body>
</html>
"""


def write_replay_html(path: str | Path, tokens: Sequence[str], reveal_steps: Sequence[int], **kwargs: Any) -> Path:
    """Write :func:`render_replay_html` to ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_replay_html(tokens, reveal_steps, **kwargs), encoding="utf-8")
    return path
