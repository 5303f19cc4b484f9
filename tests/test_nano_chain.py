"""A micro version of the DiffuCoder-nano pipeline, run with the shipped configs/nano files and
tiny overrides: AR -> more AR -> MDM and -> block (-> its certainty-forcing distillation) -> SFT ->
coupled-GRPO. Each stage's output must load into the next with the attention / shift / block length its recipe promises."""

import json
import sys
from pathlib import Path

from diffucode.config import load_config
from diffucode.models import load_model
from diffucode.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
NANO = ROOT / "configs" / "nano"
TINY = ["model.tiny.hidden_size=32", "model.tiny.num_layers=1", "tokenizer_path=null", "batch_size=4",
        "micro_batch_size=4", "save_every=0", "eval_every=0", "logging.plot=false", "data.eval_fraction=0.0"]


def _train(name, tmp, *overrides):
    from diffucode.recipes.train import train

    cfg = load_config(TrainConfig, NANO / name, [f"output_dir={tmp / name}", "max_steps=2", *TINY, *overrides])
    result = train(cfg)
    assert result.status == "finished" and result.final_dir is not None
    return result.final_dir


def test_micro_nano_chain(tmp_path, monkeypatch):
    from diffucode.data.synthetic import full_function, load_split
    from diffucode.recipes.rl import RLConfig, train_rl

    sys.path.insert(0, str(ROOT / "scripts"))
    import build_nano_data

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": full_function(t)}) + "\n" for t in load_split("train", 40)))
    build_nano_data.main(["--out", str(tmp_path), "--n-sft", "16", "--n-rl", "8"])

    data = [f"data.train=[{corpus}]", "max_seq_len=64"]
    ar = _train("01_ar.yaml", tmp_path, *data)
    assert load_model(ar)[0].attention == "causal"
    ar = _train("01b_ar_more.yaml", tmp_path, *data, f"model.init_from={ar}")  # continued AR pre-training
    assert load_model(ar)[0].attention == "causal"
    mdm = _train("02_mdm.yaml", tmp_path, *data, f"model.init_from={ar}", "diffusion.anneal_steps=1")
    m, _ = load_model(mdm)
    assert (m.attention, m.shift) == ("bidirectional", True)
    block = _train("02_block.yaml", tmp_path, *data, f"model.init_from={ar}", "diffusion.mask_warmup_steps=1")
    m, _ = load_model(block)
    assert (m.attention, m.shift, m.block_len) == ("block_causal", False, 4)
    import build_distill_data  # certainty-forcing distillation: the block model's own decodes, then stage 07

    build_distill_data.main(["--model", str(block), "--sft", str(tmp_path / "sft.jsonl"), "--limit", "8",
                             "--out", str(tmp_path / "distill.jsonl"), "--max-new-tokens", "16", "--no-progress"])
    distilled = _train("07_distill_block.yaml", tmp_path, f"data.train=[{tmp_path / 'distill.jsonl'}]",
                       "max_seq_len=200", f"model.init_from={block}")
    m, _ = load_model(distilled)
    assert (m.attention, m.shift, m.block_len) == ("block_causal", False, 4)
    sft = _train("03_sft_mdm.yaml", tmp_path, f"data.train=[{tmp_path / 'sft.jsonl'}]", "max_seq_len=200",
                 f"model.init_from={mdm}")
    m, _ = load_model(sft)
    assert (m.attention, m.shift) == ("bidirectional", True)

    cfg = load_config(RLConfig, NANO / "04_grpo_coupled.yaml", [
        f"output_dir={tmp_path / 'grpo'}", "max_steps=1", "save_every=0", f"model.init_from={sft}",
        f"data.prompts={tmp_path / 'rl_prompts.jsonl'}", "prompts_per_step=1", "rollout.group_size=2",
        "rollout.max_new_tokens=16", "rollout.steps=16", "rollout.batch_prompts=1", "micro_batch_size=2",
        "reward.workers=1", "logging.plot=false",
    ])
    result = train_rl(cfg)
    assert result.status == "finished"
    m, _ = load_model(result.final_dir)
    assert (m.attention, m.shift) == ("bidirectional", True)
    rows = [json.loads(x) for x in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert rows and "reward" in rows[-1]
