"""Bad input fails early with a message that names the problem (and the flag), never deep in torch."""

import pytest
import torch

from diffucode.config import ConfigError
from diffucode.sampling import GenerationConfig, generate


@pytest.mark.parametrize("kw,match", [
    (dict(max_new_tokens=8, steps=9), "--steps: 9 steps for 8 tokens"),
    (dict(alg="greedy"), "--alg: unknown algorithm 'greedy'"),
    (dict(cache="full"), "--cache: unknown cache mode"),
    (dict(threshold=1.5), "--threshold"),
    (dict(top_p=0.0), "--top-p"),
    (dict(top_k=0), "--top-k"),
    (dict(temperature=-1.0), "--temperature"),
    (dict(max_new_tokens=0), "--max-new-tokens"),
    (dict(block_len=0), "--block-len"),
    (dict(num_return_sequences=0), "--num-return-sequences"),
])
def test_bad_config_values(kw, match):
    with pytest.raises(ConfigError, match=match):
        GenerationConfig(**kw)


def test_block_len_must_divide_the_length(dream_model):
    model, tok = dream_model
    with pytest.raises(ConfigError, match="--block-len: 3 does not divide --max-new-tokens 8"):
        generate(model, torch.tensor([[5, 6]]), config=GenerationConfig(max_new_tokens=8, block_len=3))
    with pytest.raises(ConfigError, match="--steps: 3 steps cannot be split evenly over 2 blocks"):
        generate(model, torch.tensor([[5, 6]]), config=GenerationConfig(max_new_tokens=8, block_len=4, steps=3))


def test_prompt_longer_than_context():
    from diffucode.models import build_tiny_model

    model, _ = build_tiny_model(hidden_size=32, max_seq_len=24)
    with pytest.raises(ValueError, match=r"prompt \(20\) \+ max_new_tokens \(8\) = 28 tokens exceeds the model's context of 24"):
        generate(model, torch.full((1, 20), 7), config=GenerationConfig(max_new_tokens=8))
    block, _ = build_tiny_model(hidden_size=32, max_seq_len=24, attention="block_causal", block_len=4)
    with pytest.raises(ValueError, match="exceeds the model's context of 24"):
        generate(block, torch.full((1, 20), 7), config=GenerationConfig(max_new_tokens=8))


def test_bad_inputs(dream_model, block_model):
    model, tok = dream_model
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    with pytest.raises(ValueError, match="left-padded"):
        generate(model, ids, torch.tensor([[1, 1, 0], [1, 1, 1]]), GenerationConfig(max_new_tokens=4))
    with pytest.raises(ValueError, match="all padding"):
        generate(model, ids, torch.tensor([[0, 0, 0], [1, 1, 1]]), GenerationConfig(max_new_tokens=4))
    with pytest.raises(ValueError, match="contains the mask token"):
        generate(model, torch.tensor([[5, model.mask_token_id]]), config=GenerationConfig(max_new_tokens=4))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(model, torch.tensor([[5, 10**6]]), config=GenerationConfig(max_new_tokens=4))
    with pytest.raises(ValueError, match="integer token ids"):
        generate(model, torch.tensor([[5.0, 6.0]]), config=GenerationConfig(max_new_tokens=4))
    with pytest.raises(ValueError, match="empty"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), config=GenerationConfig(max_new_tokens=4))
    with pytest.raises(TypeError, match="GenerationConfig"):
        generate(model, ids, config={"max_new_tokens": 4})

    bmodel, _ = block_model
    with pytest.raises(ConfigError, match="--cache prefix: prefix/dual caches are for bidirectional models"):
        generate(bmodel, ids, config=GenerationConfig(max_new_tokens=4, cache="prefix"))
    with pytest.raises(ConfigError, match="--block-len: 6 is not a multiple of this block-causal model's block 4"):
        generate(bmodel, ids, config=GenerationConfig(max_new_tokens=12, block_len=6))
    with pytest.raises(ConfigError, match="--sub-block-len: 3 does not divide the block length 8"):
        generate(bmodel, ids, config=GenerationConfig(max_new_tokens=16, block_len=8, sub_block_len=3))
    with pytest.raises(ValueError, match="infilling .* needs a bidirectional model"):
        generate(bmodel, ids, config=GenerationConfig(max_new_tokens=4), suffix_ids=torch.tensor([5]))


def test_generation_config_loads_from_yaml_and_overrides(tmp_path):
    from diffucode.config import load_config

    path = tmp_path / "gen.yaml"
    path.write_text("max_new_tokens: 64\nalg: low_confidence\nblock_len: 32\nthreshold: 0.9\nstop_token_ids: [4]\n")
    cfg = load_config(GenerationConfig, path, ["cache=dual"])
    assert (cfg.max_new_tokens, cfg.alg, cfg.cache, cfg.stop_token_ids, cfg.num_steps) == (64, "low_confidence", "dual", [4], 64)
    with pytest.raises(ConfigError, match="unknown key 'tempreature'"):
        load_config(GenerationConfig, path, ["tempreature=0.5"])
    with pytest.raises(ConfigError, match="--steps: 65 steps for 64 tokens"):
        load_config(GenerationConfig, path, ["steps=65"])
