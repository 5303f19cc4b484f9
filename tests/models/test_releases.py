"""Public releases, written inside the test in their on-disk layout, load without remote code,
print nothing on stdout, and give the logits of an independent computation on the same weights.

Layouts (what each release ships; ids as released):
- Dream / DiffuCoder: ``config.json`` with ``model_type: "Dream"`` and an ``auto_map`` to the custom
  modeling file, Qwen2 weight names, and a tokenizer of ``vocab.json`` + ``merges.txt`` +
  ``tokenizer_config.json`` naming ``DreamTokenizer`` through ``auto_map`` (no ``tokenizer.json``);
  added tokens from 151643 (``<|endoftext|>``) to 151666 (``<|mask|>``); DiffuCoder-Instruct adds
  ``<|dlm_pad|>`` as its pad token. Sources of the ids (the released ``tokenizer_config.json`` of
  apple/DiffuCoder-7B-* is not in the stored public material we could search; see the README):
  151643..151664 = Qwen2.5's specials, as in JetAstra/SDAR c2041a8
  ``training/model/SDAR-4B-Chat/tokenizer_config.json`` (same Qwen tokenizer family);
  ``<|mask|>`` = 151666 and pad = 151643 = the defaults of Dream's ``configuration_dream.py``
  (copy in NVlabs/Fast-dLLM 24cc59e ``dream/model/configuration_dream.py``);
  ``<|beginoftext|>`` = 151665 and ``<|dlm_pad|>`` = 151667 = a third-party DiffuCoder JAX port's
  tokenizer guide ("Special Tokens" table; stored-index file 28410751214, repository not named).
  The loader never assumes these ids: it reads ``added_tokens_decoder`` and checks every id.
- SDAR: ``model_type: "sdar"`` (Qwen3: per-head ``q_norm`` / ``k_norm``, explicit ``head_dim``),
  ``block_size: 4``, ``mask_token_id: 151669``, ``attn_implementation: "flex_attention"``, a
  ``Qwen2Tokenizer`` with an ``auto_map`` (fields copied from JetAstra/SDAR's SDAR-4B-Chat).
- Stable-DiffCoder: a plain ``model_type: "llama"`` config with ``architectures:
  ["StableDiffcoderForCausalLM"]`` and an ``auto_map``, no diffusion field; mask token
  ``<[MASK_TOKEN]>`` = 5 (the other special tokens here are placeholders).

The vocabularies are a tiny BPE padded with unreachable filler entries up to the released
special-token ids, so every id is the released one.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

from diffucode.models import load_model
from diffucode.models.attention import block_causal_reference

QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]  # 151643 .. 151664, as in Qwen2.5
DREAM_SPECIALS = QWEN_SPECIALS + ["<|beginoftext|>", "<|mask|>"]  # 151665, 151666 (sources: module docstring)
CORPUS = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i)\n", "x = [y * 2 for y in z]\n"] * 4
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _bpe(special_tokens=()):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok


def _added(names, first_id, not_special=("<tool_call>", "</tool_call>")):
    return {str(first_id + i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                                "single_word": False, "special": c not in not_special} for i, c in enumerate(names)}


def write_qwen_bpe_files(d: Path, first_special=151643):
    """vocab.json + merges.txt of a tiny byte-level BPE, the vocab padded with unreachable entries
    (no merge produces them) so that the added tokens get the released ids."""
    _bpe().model.save(str(d))
    vocab = json.loads((d / "vocab.json").read_text())
    vocab.update({f"<filler{i}>": i for i in range(len(vocab), first_special)})
    (d / "vocab.json").write_text(json.dumps(vocab))


def _save_weights(model, d: Path, rename=None):
    sd = {(rename(k) if rename else k): v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, d / "model.safetensors", metadata={"format": "pt"})


def _sharpen(model, scale=30.0):
    """Scale the query/key projections so attention is far from uniform and the rotary base (rope_theta)
    visibly changes the logits (at the 0.02 init scale, attention is nearly uniform)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "q_proj" in name or "k_proj" in name:
                p.mul_(scale)


def _mask_from_rule(n, rule):
    return torch.tensor([[rule(i, j) for j in range(n)] for i in range(n)])[None, None]


def _ids(n=11, hi=250):
    return torch.randint(5, hi, (1, n), generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------------------------
# Dream / DiffuCoder
# ---------------------------------------------------------------------------------------------
def write_dream_release(d: Path, instruct: bool, weights: bool = True) -> Qwen2ForCausalLM | None:
    d.mkdir(parents=True, exist_ok=True)
    dims = dict(vocab_size=152064, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=131072, rms_norm_eps=1e-6, rope_theta=1000000.0,
                tie_word_embeddings=False)
    ref = None
    if weights:
        torch.manual_seed(0)
        ref = Qwen2ForCausalLM(Qwen2Config(**dims)).eval()  # the independent computation: stock Qwen2, rope_theta 1e6
        _sharpen(ref)
        _save_weights(ref, d)  # Dream's weight names are Qwen2's (model.layers.N.self_attn.q_proj, lm_head)
    # <|dlm_pad|> right after <|mask|>: 151667 (sources in the module docstring)
    names = DREAM_SPECIALS + (["<|dlm_pad|>"] if instruct else [])
    pad = "<|dlm_pad|>" if instruct else "<|endoftext|>"
    pad_id = 151643 + names.index(pad)
    config = {
        "architectures": ["DreamModel"], "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu", "initializer_range": 0.02,
        "mask_token_id": 151666, "max_window_layers": 28, "model_type": "Dream", "pad_token_id": pad_id,
        "rope_scaling": None, "sliding_window": None, "torch_dtype": "bfloat16", "transformers_version": "4.46.2",
        "use_cache": False, "use_sliding_window": False, **dims,
    }
    (d / "config.json").write_text(json.dumps(config, indent=2))
    # Dream's DreamModel.from_pretrained requires a generation_config.json, so the releases ship one
    # (its exact fields are not in the material we have: token ids here)
    gen = {"bos_token_id": 151643, "eos_token_id": 151643, "pad_token_id": pad_id, "mask_token_id": 151666}
    (d / "generation_config.json").write_text(json.dumps(gen, indent=2))
    write_qwen_bpe_files(d)
    tcfg = {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": _added(names, 151643),
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "bos_token": "<|beginoftext|>", "chat_template": CHAT, "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>", "errors": "replace", "mask_token": "<|mask|>", "model_max_length": 131072,
        "pad_token": pad, "split_special_tokens": False, "tokenizer_class": "DreamTokenizer", "unk_token": None,
    }
    (d / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2))
    return ref


@pytest.fixture(scope="module")
def dream_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("releases") / "DiffuCoder-7B-Instruct"
    ref = write_dream_release(d, instruct=True)
    return d, ref


def test_dream_release_loads_with_released_ids_and_logits(dream_dir, capfd):
    d, ref = dream_dir
    assert not (d / "tokenizer.json").exists()
    model, tok = load_model(d)
    out, err = capfd.readouterr()
    assert out == ""  # nothing on stdout: no remote-code prompt, no prints
    ours = [line for line in err.splitlines() if line.startswith("diffucode:")]
    assert len(ours) == 1 and "dream (model_type 'Dream')" in ours[0]  # one line saying what and why
    assert model.checkpoint_format == "dream" and model.attention == "bidirectional" and model.shift
    assert (model.mask_token_id, tok.mask_token_id) == (151666, 151666)
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|dlm_pad|>"]) == [
        151643, 151644, 151645, 151665, 151667]
    assert (tok.eos_token_id, tok.pad_token_id, model.pad_token_id) == (151643, 151667, 151667)
    assert type(tok).__name__ == "Qwen2Tokenizer"
    text = "def add(a, b):\n    return a + b\n"
    assert tok.decode(tok(text).input_ids) == text
    assert tok("<|im_start|>user").input_ids[0] == 151644  # special tokens are not split
    ids = _ids()
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(ids.shape[1], lambda i, j: True)).logits
        got = model(ids).logits
    torch.testing.assert_close(got[:, 1:], raw[:, :-1], atol=1e-5, rtol=1e-5)  # shift: j reads output j-1


def test_dream_rope_theta_is_the_released_one(dream_dir):
    # A loader that fell back to rope_theta 10000 would still run, with different logits.
    d, ref = dream_dir
    model, _ = load_model(d, verbose=False)
    assert model.config.rope_parameters["rope_theta"] == 1000000.0
    wrong_cfg = Qwen2Config.from_dict(ref.config.to_dict())
    wrong_cfg.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    wrong = Qwen2ForCausalLM(wrong_cfg).eval()
    wrong.load_state_dict(ref.state_dict())
    ids = _ids()
    with torch.no_grad():
        assert (wrong(ids).logits - ref(ids).logits).abs().max() > 1e-3


def test_generate_cli_json_stdout_is_only_the_result(dream_dir, capfd):
    from diffucode.cli import main

    d, _ = dream_dir
    assert main(["generate", "--json", "--model", str(d), "--max-new-tokens", "4", "--device", "cpu", "def add(a, b):"]) == 0
    out, err = capfd.readouterr()  # file-descriptor level: catches prints and prompts from any library
    rec = json.loads(out)  # the whole of stdout is one JSON object
    assert len(rec["order"]) == len(rec["token_ids"]) >= 1
    assert "dream (model_type 'Dream')" in err


@pytest.mark.slow
def test_generate_cli_subprocess_stdout_is_only_the_result(dream_dir):
    d, _ = dream_dir
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "diffucode.cli", "generate", "--json", "--model", str(d),
                           "--max-new-tokens", "4", "--device", "cpu", "def add(a, b):"],
                          capture_output=True, text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)
    assert "dream (model_type 'Dream')" in proc.stderr


def test_dream_base_pad_is_endoftext(tmp_path):
    from diffucode.models import load_tokenizer

    write_dream_release(tmp_path / "Dream-v0-Base-7B", instruct=False, weights=False)
    tok = load_tokenizer(tmp_path / "Dream-v0-Base-7B")
    assert (tok.pad_token_id, tok.mask_token_id, tok.bos_token_id) == (151643, 151666, 151665)
    assert "<|dlm_pad|>" not in tok.get_vocab()


def test_wrong_added_token_id_is_refused(tmp_path):
    from diffucode.models import CheckpointError

    d = tmp_path / "broken"
    write_dream_release(d, instruct=False, weights=False)  # the tokenizer is checked before any weight is read
    tcfg = json.loads((d / "tokenizer_config.json").read_text())
    tcfg["added_tokens_decoder"]["151666"]["content"] = "<|mask|>"
    tcfg["added_tokens_decoder"]["151670"] = {**tcfg["added_tokens_decoder"].pop("151665"), "content": "<|beginoftext|>"}
    (d / "tokenizer_config.json").write_text(json.dumps(tcfg))
    with pytest.raises(CheckpointError, match="beginoftext.*expected 151670"):
        load_model(d, verbose=False)


# ---------------------------------------------------------------------------------------------
# SDAR (Qwen3 backbone, block-causal)
# ---------------------------------------------------------------------------------------------
def write_sdar_release(d: Path) -> Qwen3ForCausalLM:
    d.mkdir(parents=True, exist_ok=True)
    # head_dim 16 != hidden / heads (= 8): a Llama/Qwen2 reading of the config gets the shapes wrong
    dims = dict(vocab_size=151936, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_theta=1000000, tie_word_embeddings=False, attention_bias=False)
    torch.manual_seed(1)
    ref = Qwen3ForCausalLM(Qwen3Config(**dims)).eval()
    with torch.no_grad():  # q_norm / k_norm away from their all-ones init, so a model without them differs
        for name, p in ref.named_parameters():
            if "q_norm" in name or "k_norm" in name:
                p.uniform_(0.5, 1.5)
    _sharpen(ref)
    _save_weights(ref, d)
    config = {
        "architectures": ["SDARForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_sdar.SDARConfig", "AutoModel": "modeling_sdar.SDARModel",
                     "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM"},
        "attention_dropout": 0.0, "attn_implementation": "flex_attention", "bos_token_id": 151643, "debug": False,
        "eos_token_id": 151643, "block_size": 4, "mask_token_id": 151669, "ep_size": 1, "fuse_cross_entropy": True,
        "hidden_act": "silu", "initializer_range": 0.02, "max_window_layers": 36, "micro_forward": False,
        "model_type": "sdar", "rope_scaling": None, "skip_checkpoint": False, "sliding_window": None,
        "torch_dtype": "bfloat16", "transformers_version": "4.52.4", "use_cache": False, "use_deepep": False,
        "use_sliding_window": False, **dims,
    }
    (d / "config.json").write_text(json.dumps(config, indent=2))
    write_qwen_bpe_files(d)
    names = QWEN_SPECIALS + ["<tool_response>", "</tool_response>", "<think>", "</think>", "<|MASK|>"]
    tcfg = {
        "add_bos_token": False, "add_prefix_space": False,
        "added_tokens_decoder": _added(names, 151643, not_special=("<tool_call>", "</tool_call>", "<|fim_prefix|>",
                                       "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                                       "<tool_response>", "</tool_response>", "<think>", "</think>", "<|MASK|>")),
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "auto_map": {"AutoTokenizer": ["tokenization_qwen2.Qwen2Tokenizer", "tokenization_qwen2_fast.Qwen2TokenizerFast"]},
        "bos_token": None, "chat_template": CHAT, "clean_up_tokenization_spaces": False, "eos_token": "<|endoftext|>",
        "mask_token": "<|MASK|>", "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }
    (d / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2))
    return ref


def test_sdar_release_is_qwen3_block_causal(tmp_path, capfd):
    d = tmp_path / "SDAR-4B-Chat"
    ref = write_sdar_release(d)
    model, tok = load_model(d)
    out, err = capfd.readouterr()
    assert out == ""
    assert "sdar (model_type 'sdar')" in err and "Qwen3ForCausalLM" in err and "block 4" in err
    assert model.checkpoint_format == "sdar"
    assert (model.attention, model.block_len, model.shift, model.mask_token_id) == ("block_causal", 4, False, 151669)
    assert tok.mask_token_id == 151669 and tok.eos_token_id == 151643
    assert model.config._attn_implementation != "flex_attention"
    ids = _ids(11)  # not a multiple of 4: the last block is partial
    rule = block_causal_reference(list(range(11)), 4)
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(11, lambda i, j: rule[i][j])).logits
        got = model(ids).logits
    torch.testing.assert_close(got, raw, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Stable-DiffCoder (plain llama config, custom class named in architectures / auto_map)
# ---------------------------------------------------------------------------------------------
SDC_SPECIALS = ["<[begin▁of▁sentence]>", "<[PAD▁TOKEN]>", "<[end▁of▁sentence]>", "<[UNK]>", "<[placeholder4]>",
                "<[MASK_TOKEN]>"]


def write_stable_diffcoder_release(d: Path, with_architectures=True) -> LlamaForCausalLM:
    d.mkdir(parents=True, exist_ok=True)
    bpe = _bpe(SDC_SPECIALS)
    assert bpe.token_to_id("<[MASK_TOKEN]>") == 5
    dims = dict(vocab_size=bpe.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192, rms_norm_eps=1e-6,
                rope_theta=500000.0, tie_word_embeddings=False)
    torch.manual_seed(2)
    ref = LlamaForCausalLM(LlamaConfig(**dims)).eval()
    _sharpen(ref)
    _save_weights(ref, d)
    config = {"architectures": ["StableDiffcoderForCausalLM"] if with_architectures else ["LlamaForCausalLM"],
              "auto_map": {"AutoModelForCausalLM": "modeling_stable_diffcoder.StableDiffcoderForCausalLM"},
              "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
              "hidden_act": "silu", "initializer_range": 0.02, "mlp_bias": False, "model_type": "llama",
              "pretraining_tp": 1, "rope_scaling": None, "torch_dtype": "bfloat16", "use_cache": True, **dims}
    (d / "config.json").write_text(json.dumps(config, indent=2))
    bpe.save(str(d / "tokenizer.json"))
    tcfg = {"added_tokens_decoder": _added(SDC_SPECIALS, 0, not_special=()), "bos_token": SDC_SPECIALS[0],
            "eos_token": SDC_SPECIALS[2], "pad_token": SDC_SPECIALS[1], "chat_template": CHAT,
            "clean_up_tokenization_spaces": False, "model_max_length": 8192, "tokenizer_class": "PreTrainedTokenizerFast"}
    (d / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2))
    return ref


def test_stable_diffcoder_release_is_block_causal_b4_no_shift(tmp_path, capfd):
    d = tmp_path / "Stable-DiffCoder-8B-Instruct"
    ref = write_stable_diffcoder_release(d)
    model, tok = load_model(d)
    out, err = capfd.readouterr()
    assert out == ""
    assert "stable_diffcoder (architectures 'StableDiffcoderForCausalLM')" in err
    assert (model.attention, model.block_len, model.shift, model.mask_token_id) == ("block_causal", 4, False, 5)
    assert tok.mask_token == "<[MASK_TOKEN]>" and tok.eos_token_id == 2
    ids = _ids(11)
    rule = block_causal_reference(list(range(11)), 4)
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(11, lambda i, j: rule[i][j])).logits
        got = model(ids).logits
    torch.testing.assert_close(got, raw, atol=1e-5, rtol=1e-5)


def test_stable_diffcoder_found_by_auto_map_alone_and_overrides_win(tmp_path, capfd):
    d = tmp_path / "sdc"
    ref = write_stable_diffcoder_release(d, with_architectures=False)
    model, _ = load_model(d)
    assert model.checkpoint_format == "stable_diffcoder" and "auto_map AutoModelForCausalLM" in capfd.readouterr().err
    # explicit overrides: run it as a bidirectional, shifted model with another mask token
    model2, tok2 = load_model(d, attention="bidirectional", shift=True, mask_token="<[placeholder4]>")
    err = capfd.readouterr().err
    assert "overridden: attention, shift, mask_token" in err
    assert (model2.attention, model2.shift, model2.mask_token_id, tok2.mask_token_id) == ("bidirectional", True, 4, 4)
    ids = _ids(9)
    with torch.no_grad():
        raw = ref(input_ids=ids, attention_mask=_mask_from_rule(9, lambda i, j: True)).logits
        got = model2(ids).logits
    torch.testing.assert_close(got[:, 1:], raw[:, :-1], atol=1e-5, rtol=1e-5)
    model3, _ = load_model(d, block_len=8, verbose=False)
    assert model3.block_len == 8


def test_cli_model_overrides_reach_the_loader(tmp_path, capfd):
    from diffucode.cli import main

    d = tmp_path / "sdc"
    write_stable_diffcoder_release(d)
    argv = ["generate", "--json", "--model", str(d), "--max-new-tokens", "4", "--device", "cpu",
            "--attention", "block_causal", "--model-block-len", "2", "--no-logits-shift", "--mask-token", "<[placeholder4]>",
            "x = 1"]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    json.loads(out)
    line = next(x for x in err.splitlines() if x.startswith("diffucode:"))
    assert "block 2" in line and "'<[placeholder4]>' = 4" in line
    assert "overridden: attention, shift, block_len, mask_token" in line


def test_saved_directory_carries_transformers4_fields_and_round_trips(tmp_path):
    """What diffucode saves is read by transformers 4.x too (rope_theta, torch_dtype, a tokenizer class
    4.x knows, additional_special_tokens) and reloads with the same weights, logits and token ids."""
    from diffucode.models import build_tiny_model, build_tiny_tokenizer

    model, tok = build_tiny_model(hidden_size=32)
    model.backbone.config.rope_parameters = {"rope_type": "default", "rope_theta": 500000.0}
    rotary = model.backbone.model.rotary_emb
    model.backbone.model.rotary_emb = type(rotary)(config=model.backbone.config)  # a model trained at 5e5
    out = model.save_pretrained(tmp_path / "ckpt", tokenizer=tok)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rope_theta"] == 500000.0 and cfg["rope_parameters"]["rope_theta"] == 500000.0
    assert cfg["torch_dtype"] == "float32"
    tcfg = json.loads((out / "tokenizer_config.json").read_text())
    assert tcfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tcfg["additional_special_tokens"] == ["<|im_start|>", "<|im_end|>"] and "extra_special_tokens" not in tcfg
    loaded, tok2 = load_model(out, verbose=False)
    assert loaded.config.rope_parameters["rope_theta"] == 500000.0
    text = "def is_palindrome(s):\n    x = 'héllo' + 123  <|im_end|>"
    assert tok2(text).input_ids == build_tiny_tokenizer()(text).input_ids  # exactly the saved tokenizer.json
    ids = torch.tensor([tok(text).input_ids])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
