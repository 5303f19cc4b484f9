"""`diffucode export`: a model written in a release layout loads back (the loader detects the family)
with identical weights, logits and token ids, and its files are the ones the release-layout tests
in test_releases.py write (config model_type, weight names, tokenizer files). Misfits are refused."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffucode.models import build_tiny_model, load_model
from diffucode.models.export import ExportError, export_model, llada_weight_name

_spec = importlib.util.spec_from_file_location("release_layouts", Path(__file__).with_name("test_releases.py"))
releases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(releases)


def _same_model(a, b, ids):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    with torch.no_grad():
        assert torch.equal(a(ids).logits, b(ids).logits)
    assert (a.attention, a.shift, a.block_len, a.mask_token_id) == (b.attention, b.shift, b.block_len, b.mask_token_id)


def _names(d: Path) -> set[str]:
    return set(load_file(d / "model.safetensors").keys())


def test_dream_release_exports_to_its_own_layout(tmp_path):
    src = tmp_path / "DiffuCoder-7B-Instruct"
    releases.write_dream_release(src, instruct=True)
    model, tok = load_model(src, verbose=False)
    out = export_model(model, tok, tmp_path / "exported", "dream")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())  # no tokenizer.json
    cfg, ref_cfg = (json.loads((d / "config.json").read_text()) for d in (out, src))
    for key in ("model_type", "architectures", "auto_map", "mask_token_id", "pad_token_id", "eos_token_id", "rope_theta",
                "vocab_size", "hidden_size", "num_key_value_heads", "tie_word_embeddings"):
        assert cfg[key] == ref_cfg[key], key
    assert _names(out) == _names(src)  # Qwen2 names, as the release
    gen = json.loads((out / "generation_config.json").read_text())  # DreamModel.from_pretrained needs the file
    assert (gen["mask_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (151666, 151643, ref_cfg["pad_token_id"])
    tcfg, ref_tcfg = (json.loads((d / "tokenizer_config.json").read_text()) for d in (out, src))
    assert tcfg["added_tokens_decoder"] == ref_tcfg["added_tokens_decoder"]
    assert (tcfg["tokenizer_class"], tcfg["auto_map"], tcfg["mask_token"], tcfg["pad_token"]) == (
        "DreamTokenizer", ref_tcfg["auto_map"], "<|mask|>", "<|dlm_pad|>")
    assert json.loads((out / "vocab.json").read_text()) == json.loads((src / "vocab.json").read_text())
    loaded, tok2 = load_model(out, verbose=False)
    assert loaded.checkpoint_format == "dream"
    text = "def add(a, b):\n    return a + b  <|im_end|>"
    assert tok2(text).input_ids == tok(text).input_ids
    _same_model(model, loaded, torch.tensor([tok(text).input_ids]))


def test_tiny_llama_exports_as_llada_with_olmo_names(tmp_path):
    model, tok = build_tiny_model(arch="llama", shift=False, hidden_size=32)
    out = export_model(model, tok, tmp_path / "llada", "llada")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "llada" and cfg["d_model"] == 32 and cfg["mask_token_id"] == tok.mask_token_id
    # exactly the names test_formats.py writes for a LLaDA checkpoint (the loader's inverse mapping)
    expected = {llada_weight_name(k) for k in model.backbone.state_dict()}
    assert _names(out) == expected and "model.transformer.blocks.1.ff_proj.weight" in expected
    assert "model.transformer.ff_out.weight" in expected and "model.transformer.blocks.0.attn_out.weight" in expected
    loaded, tok2 = load_model(out, verbose=False)
    assert loaded.checkpoint_format == "llada"
    text = "x = [y * 2 for y in z]  <|im_end|>"
    assert tok2(text).input_ids == tok(text).input_ids
    _same_model(model, loaded, torch.tensor([tok(text).input_ids]))


def test_sdar_release_exports_to_its_own_layout(tmp_path):
    src = tmp_path / "SDAR-4B-Chat"
    releases.write_sdar_release(src)
    model, tok = load_model(src, verbose=False)
    out = export_model(model, tok, tmp_path / "exported", "sdar")
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model_type"], cfg["block_size"], cfg["mask_token_id"], cfg["head_dim"]) == ("sdar", 4, 151669, 16)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 151643  # SDAR's generate.py reads it
    # every config field SDAR's modeling_sdar.py reads without a default, as the release writes them
    release = json.loads((src / "config.json").read_text())
    for key in ("fuse_cross_entropy", "use_sliding_window", "sliding_window", "rope_scaling", "attention_bias"):
        assert cfg[key] == release[key], key
    assert _names(out) == _names(src)  # Qwen3 names incl. q_norm / k_norm
    loaded, tok2 = load_model(out, verbose=False)
    assert loaded.checkpoint_format == "sdar"
    text = "def add(a, b):\n    return a + b"
    assert tok2(text).input_ids == tok(text).input_ids
    _same_model(model, loaded, torch.tensor([tok(text).input_ids]))


def test_misfits_are_refused_and_nothing_is_written(tmp_path):
    qwen2, tok = build_tiny_model(hidden_size=32)  # bidirectional, shifted, GPT-2 byte-level split rule
    llama, ltok = build_tiny_model(arch="llama", shift=False, hidden_size=32)
    cases = [
        (llama, ltok, "dream", "cannot export a llama backbone as dream: dream takes a Qwen2"),
        (qwen2, tok, "sdar", "cannot export a qwen2 backbone as sdar"),
        (qwen2, tok, "llada", "bidirectional attention with shifted logits, llada runs bidirectional with unshifted"),
        (qwen2, tok, "dream", "pre-tokenization is not Qwen2's"),  # the tiny tokenizer splits "\n    " differently
    ]
    for model, t, fmt, msg in cases:
        with pytest.raises(ExportError, match=msg):
            export_model(model, t, tmp_path / "out", fmt)
        assert list(tmp_path.iterdir()) == []  # no output, no temp dir left behind
    with torch.no_grad():
        qwen2.backbone.model.layers[0].self_attn.q_proj.bias.add_(0.5)
    qwen2.shift = False
    with pytest.raises(ExportError, match="non-zero bias.*layers.0.self_attn.q_proj.bias"):
        export_model(qwen2, tok, tmp_path / "out", "llada", force=True)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    with pytest.raises(ExportError, match="not an empty directory"):
        export_model(llama, ltok, tmp_path / "taken", "llada")
    assert (tmp_path / "taken" / "x").read_text() == "keep"


def test_force_exports_with_a_warning_and_family_conventions(tmp_path, capfd):
    model, tok = build_tiny_model(attention="block_causal", shift=False, hidden_size=32)
    out = export_model(model, tok, tmp_path / "d", "dream", force=True)
    err = capfd.readouterr().err
    assert "warning: exporting as dream although the model runs block_causal attention with unshifted" in err
    assert "pre-tokenization is not Qwen2's" in err
    loaded, _ = load_model(out, verbose=False)
    assert (loaded.attention, loaded.shift) == ("bidirectional", True)  # Dream's conventions, as the warning said
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, loaded.backbone.state_dict()[k])


def test_cli_export(tmp_path, capfd):
    from diffucode.cli import main

    src = tmp_path / "sdar"
    releases.write_sdar_release(src)
    assert main(["export", "--model", str(src), "--format", "sdar", "--out", str(tmp_path / "o")]) == 0
    out, err = capfd.readouterr()
    assert out == "" and "wrote sdar layout" in err
    assert main(["export", "--model", str(src), "--format", "dream", "--out", str(tmp_path / "o2")]) != 0
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1] == ("diffucode export: error: cannot export a qwen3 backbone as dream: dream takes a Qwen2 backbone, "
                       "llada a Llama (or bias-free Qwen2) backbone, sdar a Qwen3 backbone")
    assert not (tmp_path / "o2").exists()
