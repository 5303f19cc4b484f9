"""Every checkpoint format: write a tiny checkpoint in its exact on-disk layout, load it with
``load_model``, and compare logits with an independent computation on the same weights (the
plain transformers backbone, given an explicit mask built by a double loop)."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from diffucode.models import CheckpointError, build_tiny_tokenizer, load_model
from diffucode.models.attention import block_causal_reference

torch.manual_seed(0)


def _tok():
    return build_tiny_tokenizer()


def _dims(tok):
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False)


def _mask_from_rule(n, rule):
    """[1,1,n,n] bool mask from rule(i, j) evaluated one pair at a time."""
    return torch.tensor([[rule(i, j) for j in range(n)] for i in range(n)])[None, None]


def _ids(tok, n=11):
    g = torch.Generator().manual_seed(1)
    return torch.randint(10, len(tok) - 10, (1, n), generator=g)


def test_dream_checkpoint(tmp_path):
    tok = _tok()
    cfg = Qwen2Config(**_dims(tok))
    ref = Qwen2ForCausalLM(cfg).eval()
    sd = {k: v.contiguous() for k, v in ref.state_dict().items()}
    save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    dream_cfg = {
        "architectures": ["DreamModel"], "model_type": "Dream",
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "mask_token_id": tok.mask_token_id, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
        "rms_norm_eps": cfg.rms_norm_eps, "rope_theta": 10000.0, "hidden_act": "silu",
        **_dims(tok),
    }
    (tmp_path / "config.json").write_text(json.dumps(dream_cfg))
    tok.save_pretrained(tmp_path)
    # Dream ships a custom tokenizer class that needs remote code: the loader must fall back.
    tc = json.loads((tmp_path / "tokenizer_config.json").read_text())
    tc["tokenizer_class"] = "DreamTokenizer"
    tc["auto_map"] = {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(tc))

    model, loaded_tok = load_model(tmp_path)
    assert model.checkpoint_format == "dream"
    assert model.attention == "bidirectional" and model.shift and model.mask_token_id == tok.mask_token_id
    assert loaded_tok.mask_token_id == tok.mask_token_id
    ids = _ids(tok)
    n = ids.shape[1]
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(n, lambda i, j: True)).logits
        got = model(ids).logits
    # shift: token j is predicted by the output at j-1
    torch.testing.assert_close(got[:, 1:], raw[:, :-1], atol=1e-5, rtol=1e-5)


def _llada_state_dict(ref: LlamaForCausalLM) -> dict:
    """Rename transformers Llama weights to LLaDA's OLMo-style names (the inverse of the loader's map)."""
    out = {}
    for k, v in ref.state_dict().items():
        k2 = (k.replace("model.embed_tokens.", "model.transformer.wte.")
               .replace("model.norm.", "model.transformer.ln_f.")
               .replace("lm_head.", "model.transformer.ff_out."))
        for a, b in [("self_attn.q_proj", "q_proj"), ("self_attn.k_proj", "k_proj"), ("self_attn.v_proj", "v_proj"),
                     ("self_attn.o_proj", "attn_out"), ("mlp.gate_proj", "ff_proj"), ("mlp.up_proj", "up_proj"),
                     ("mlp.down_proj", "ff_out"), ("post_attention_layernorm", "ff_norm"), ("input_layernorm", "attn_norm")]:
            k2 = k2.replace(a, b)
        k2 = k2.replace("model.layers.", "model.transformer.blocks.")
        out[k2] = v.contiguous()
    return out


def test_llada_checkpoint(tmp_path):
    tok = _tok()
    d = _dims(tok)
    cfg = LlamaConfig(**d)
    ref = LlamaForCausalLM(cfg).eval()
    sd = _llada_state_dict(ref)
    assert "model.transformer.blocks.0.ff_proj.weight" in sd and "model.transformer.ff_out.weight" in sd
    save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    llada_cfg = {
        "architectures": ["LLaDAModelLM"], "model_type": "llada", "d_model": d["hidden_size"], "n_heads": 4,
        "n_kv_heads": 2, "n_layers": 2, "mlp_hidden_size": d["intermediate_size"], "vocab_size": d["vocab_size"],
        "embedding_size": d["vocab_size"], "max_sequence_length": 256, "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": 10000.0, "weight_tying": False, "include_bias": False, "mask_token_id": tok.mask_token_id,
        "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
    }
    (tmp_path / "config.json").write_text(json.dumps(llada_cfg))
    tok.save_pretrained(tmp_path)
    model, _ = load_model(tmp_path)
    assert model.checkpoint_format == "llada" and model.attention == "bidirectional" and not model.shift
    ids = _ids(tok)
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(ids.shape[1], lambda i, j: True)).logits
        got = model(ids).logits
    torch.testing.assert_close(got, raw, atol=1e-5, rtol=1e-5)


def test_llada_default_mask_id(tmp_path):
    # A LLaDA config without mask_token_id means the published id 126336 (only checked, not run).
    from diffucode.models.loading import LLADA_MASK_ID
    assert LLADA_MASK_ID == 126336


def test_block_diffusion_checkpoint(tmp_path):
    tok = _tok()
    cfg = LlamaConfig(**_dims(tok))
    ref = LlamaForCausalLM(cfg).eval()
    ref.save_pretrained(tmp_path)  # plain Llama weights, as Stable-DiffCoder ships them
    c = json.loads((tmp_path / "config.json").read_text())
    c.update({"block_length": 4, "mask_token_id": tok.mask_token_id})
    (tmp_path / "config.json").write_text(json.dumps(c))
    tok.save_pretrained(tmp_path)
    model, _ = load_model(tmp_path)
    assert model.checkpoint_format == "block"
    assert model.attention == "block_causal" and model.block_len == 4 and not model.shift
    ids = _ids(tok, 11)  # not a multiple of 4: the last block is partial
    rule = block_causal_reference(list(range(11)), 4)
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(11, lambda i, j: rule[i][j])).logits
        got = model(ids).logits
    torch.testing.assert_close(got, raw, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention,shift,block_len", [("bidirectional", True, None), ("block_causal", False, 4), ("causal", False, None)])
def test_own_format_roundtrip(tmp_path, attention, shift, block_len):
    from diffucode.models import build_tiny_model

    model, tok = build_tiny_model(attention=attention, shift=shift, block_len=block_len, hidden_size=32)
    model.save_pretrained(tmp_path / "ckpt", tokenizer=tok)
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    loaded, tok2 = load_model(tmp_path / "ckpt")
    assert loaded.checkpoint_format == "diffucode"
    assert (loaded.attention, loaded.shift, loaded.block_len, loaded.mask_token_id) == (attention, shift, block_len, model.mask_token_id)
    assert tok2.mask_token_id == tok.mask_token_id and tok2.eos_token_id == tok.eos_token_id
    ids = _ids(tok)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_causal_lm_adaptation_adds_mask_token(tmp_path):
    from transformers import PreTrainedTokenizerFast

    base = _tok()
    # a tokenizer without a mask token, as a plain causal LM ships it
    tok = PreTrainedTokenizerFast(tokenizer_object=base.backend_tokenizer, eos_token="<|endoftext|>")
    tok._mask_token = None
    cfg = Qwen2Config(**{**_dims(base), "vocab_size": len(base)})
    ref = Qwen2ForCausalLM(cfg).eval()
    ref.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, loaded_tok = load_model(tmp_path, attention="bidirectional", shift=True)
    assert model.checkpoint_format == "causal_lm"
    assert loaded_tok.mask_token is not None and model.mask_token_id == loaded_tok.mask_token_id
    assert model.backbone.get_input_embeddings().num_embeddings >= len(loaded_tok)
    ids = _ids(base)
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(ids.shape[1], lambda i, j: True)).logits
        got = model(ids, align=False).logits
    torch.testing.assert_close(got[..., : raw.shape[-1]], raw, atol=1e-5, rtol=1e-5)
    # the causal choice is honoured too
    model_c, _ = load_model(tmp_path, attention="causal", shift=True)
    with torch.no_grad():
        raw_c = ref(input_ids=ids).logits  # transformers' own causal mask
        got_c = model_c(ids, align=False).logits
    torch.testing.assert_close(got_c[..., : raw_c.shape[-1]], raw_c, atol=1e-5, rtol=1e-5)


def test_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model_type": "frobnicator"}))
    with pytest.raises(CheckpointError, match="unknown model_type 'frobnicator'"):
        load_model(tmp_path / "a")
    # weights that do not match the config: a Dream config claiming 3 layers over 2-layer weights
    tok = _tok()
    ref = Qwen2ForCausalLM(Qwen2Config(**_dims(tok)))
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, tmp_path / "model.safetensors")
    bad = {"model_type": "Dream", "mask_token_id": tok.mask_token_id, **_dims(tok), "num_hidden_layers": 3}
    (tmp_path / "config.json").write_text(json.dumps(bad))
    tok.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="do not match its config.*missing weights.*layers.2"):
        load_model(tmp_path)
    bad.update(num_hidden_layers=2, hidden_size=48)
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="do not"):
        load_model(tmp_path)
