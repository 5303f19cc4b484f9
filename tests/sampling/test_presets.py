"""Named presets: each reproduces its published call field by field; flags override a preset."""

import pytest

from diffucode.recipes import generate as cli
from diffucode.sampling.presets import PRESETS, describe, preset_config


def test_dream_family_presets_carry_the_implicit_top_k_50():
    # Dream's diffusion_generate under transformers 4.x fills top_k from the legacy default 50
    for name in ("diffucoder-base", "diffucoder-instruct", "dream"):
        cfg = preset_config(name)
        assert (cfg.top_k, cfg.top_p, cfg.alg, cfg.alg_temp) == (50, 0.95, "entropy", 0.0)
        assert cfg.steps == cfg.max_new_tokens  # one token per step
    assert preset_config("diffucoder-base").temperature == 0.2
    assert preset_config("diffucoder-instruct").temperature == 0.4
    assert preset_config("dream").max_new_tokens == 512


def test_llada_fastdllm_sdar_stable_diffcoder_presets():
    c = preset_config("llada")
    assert (c.max_new_tokens, c.steps, c.block_len, c.alg, c.temperature) == (128, 128, 32, "low_confidence", 0.0)
    c = preset_config("fast-dllm")
    assert (c.max_new_tokens, c.block_len, c.threshold, c.cache, c.steps) == (256, 32, 0.9, "dual", None)
    c = preset_config("fast-dllm-dream")
    assert c.fastdllm_dream and c.top_k is None and (c.threshold, c.cache, c.block_len) == (0.9, "dual", 32)
    c = preset_config("stable-diffcoder")
    assert (c.max_new_tokens, c.steps, c.alg, c.threshold) == (512, 512, "low_confidence", None)
    c = preset_config("sdar", max_new_tokens=64)
    assert (c.max_new_tokens, c.steps) == (64, 64)  # "steps = L" follows the length


def test_cli_preset_then_flags_override(tmp_path):
    explicit = cli._explicit_flags(["--preset", "dream", "--top-k", "5", "x"])
    assert {"preset", "top_k", "prompt_arg"} <= explicit and "temperature" not in explicit
    fields = cli._with_preset("dream", {"max_new_tokens": None}, explicit)
    assert "top_k" not in fields and fields["temperature"] == 0.2 and fields["max_new_tokens"] == 512
    fields = cli._with_preset("dream", {"max_new_tokens": 16}, cli._explicit_flags(["--preset", "dream", "--max-new-tokens", "16"]))
    assert "max_new_tokens" not in fields and fields["steps"] == 16


def test_help_lists_every_preset_with_its_settings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    flat = "".join(out.split())  # argparse re-wraps the text (also at hyphens)
    for name in PRESETS:
        assert "".join(describe(name).split()) in flat
    assert "(default: entropy)" in " ".join(out.split())  # --help states the defaults


def test_preset_runs_end_to_end(capsys):
    import json

    assert cli.main(["--tiny", "--json", "--preset", "fast-dllm", "--max-new-tokens", "8", "--block-len", "4", "x = 1"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert 1 <= rec["nfe"] <= 8
