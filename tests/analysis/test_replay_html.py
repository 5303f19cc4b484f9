"""The HTML replay page: self-contained, data embedded as JSON, token text escaped; and (slow)
really rendered by headless Chromium at a chosen step."""
import html.parser
import json
import re
import shutil
import subprocess

import pytest

from diffucode.analysis import render_replay_html, token_strings, write_replay_html
from diffucode.models import build_tiny_tokenizer

NASTY = ["def", " f", "():", "\n", "    s = '</script><b>x</b>'", " &amp; <!--", "\t# \u00e9\u4e2d \u2028"]
STEPS = [2, 1, 3, 7, 4, 6, 5]


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in_script, self._attrs = [], [], False, None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script, self._attrs = True, dict(attrs)
            self.scripts.append([dict(attrs), ""])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1][1] += data


def test_page_structure_and_embedded_data():
    page = render_replay_html(NASTY, STEPS, prompt="# a <prompt> & more\n", title="t <i>x</i>",
                              meta={"alg": "entropy", "temperature": 0.2})
    p = _Collector()
    p.feed(page)
    tags = {t for t, _ in p.tags}
    assert {"html", "head", "body", "style", "button", "input", "select"} <= tags
    # exactly two scripts: the JSON data and the inline player; nothing loaded from elsewhere
    assert [a.get("type") for a, _ in p.scripts] == ["application/json", None]
    assert not any("src" in a or ("href" in a and a["href"].startswith("http")) for _, a in p.tags)
    slider = [a for t, a in p.tags if t == "input"][0]
    assert slider["type"] == "range" and slider["max"] == "7" and slider["min"] == "0"
    assert any(a.get("id") == "play" for t, a in p.tags if t == "button")
    # the token text survives the round trip; none of its markup leaks into the page
    data = json.loads(p.scripts[0][1])
    assert data["tokens"] == NASTY and data["steps"] == STEPS and data["num_steps"] == 7
    assert data["prompt"] == "# a <prompt> & more\n" and data["meta"]["alg"] == "entropy"
    assert page.count("</script>") == 2 and "<b>x</b>" not in page and "<!--" not in page
    assert "<title>t &lt;i&gt;x&lt;/i&gt;</title>" in page
    # the player draws masked tokens as placeholders and colours revealed ones by step
    player = p.scripts[1][1]
    assert "textContent" in player and "innerHTML" not in player
    assert "mask" in player and "colour(steps[i])" in player


def test_write_and_errors(tmp_path):
    out = write_replay_html(tmp_path / "sub" / "page.html", ["a", "b"], [1, 2])
    assert out.is_file() and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="same length"):
        render_replay_html(["a"], [1, 2])
    with pytest.raises(ValueError, match=r"reveal_steps\[1\] = 0"):
        render_replay_html(["a", "b"], [1, 0])


def test_token_strings_join_to_the_decoded_text():
    tok = build_tiny_tokenizer()
    text = "def f(x):\n    return 'h\u00e9llo \u4e2d'\n"
    ids = tok(text).input_ids
    pieces = token_strings(tok, ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == tok.decode(ids) == text


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(tmp_path):
    page = write_replay_html(tmp_path / "page.html", NASTY, STEPS, prompt="# prompt\n")

    def dom(fragment):
        proc = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
             "--dump-dom", f"file://{page}{fragment}"],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    def tokens_in(d):
        d = d[d.index('id="code"') : d.index('id="legend"')]  # the completion, not the legend
        spans = re.findall(r'<span class="tok( mask| new)?"[^>]*>(.*?)</span>', d, flags=re.S)
        return [(cls.strip(), html.unescape(text)) for cls, text in spans]

    opened = dom("")  # opens at the first frame (one token shown), not all masked
    assert "step 1 / 7" in opened
    at1 = tokens_in(opened)
    assert [c for c, _ in at1].count("mask") == len(NASTY) - 1
    at0 = tokens_in(dom("#step=0"))
    assert len(at0) == len(NASTY) and all(c == "mask" for c, _ in at0)

    at3 = tokens_in(dom("#step=3"))  # steps 1..3 revealed: tokens 0, 1, 2
    assert [t for c, t in at3[:3]] == NASTY[:3]
    assert [c for c, _ in at3[:3]] == ["", "", "new"]  # the newest token is outlined
    assert all(c == "mask" for c, _ in at3[3:])

    # playing runs to the end within the virtual time budget: everything shown, escaped right
    final = dom("#play")
    assert [t for _, t in tokens_in(final)] == NASTY
    assert "step 7 / 7" in final and "<b>x</b>" not in final
