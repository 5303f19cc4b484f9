"""Build the SFT and RL data of the DiffuCoder-nano pipeline from the synthetic train split.

    python scripts/build_nano_data.py --out artifacts/data

Writes, from held-in (train split) tasks only:
  sft.jsonl         two styles, alternating:
                    instruct  {"messages": [user, assistant]}: the user turn is exactly the prompt
                              that ``diffucode eval --chat`` sends (EvalPlus wording around the
                              task's code prompt); the assistant answers with one fenced python block;
                    completion {"prompt", "response", "chat_template": false}: the HumanEval-style
                              prompt (signature + docstring) and the function body, no template, so
                              ``diffucode generate "def f(x):"`` keeps working after SFT.
  rl_prompts.jsonl  {"id", "question", "test_cases"} for ``diffucode rl``: the same user turn,
                    the task's asserts as the execution reward.
One prompt format for SFT, RL and evaluation, so a tiny model is never asked to generalise
across wordings it has not seen. Evaluate these models with ``--chat --response-prefix ''``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffucode.data.synthetic import full_function, load_split
from diffucode.evaluation.prompts import chat_message


def assistant_answer(task: dict) -> str:
    return "```python\n" + full_function(task, docstring=False).rstrip("\n") + "\n```"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="artifacts/data", help="output directory")
    ap.add_argument("--n-sft", type=int, default=12000, help="SFT examples (train split)")
    ap.add_argument("--n-rl", type=int, default=2000, help="RL prompts (train split, disjoint from the SFT ones)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = load_split("train", args.n_sft + args.n_rl, args.seed)
    sft, rl = tasks[: args.n_sft], tasks[args.n_sft:]
    with (out / "sft.jsonl.tmp").open("w") as f:
        for i, t in enumerate(sft):
            if i % 2 == 0:
                msgs = [{"role": "user", "content": chat_message(t["prompt"])},
                        {"role": "assistant", "content": assistant_answer(t)}]
                rec = {"messages": msgs}
            else:
                rec = {"prompt": t["prompt"], "response": t["canonical_solution"], "chat_template": False}
            f.write(json.dumps(rec) + "\n")
    (out / "sft.jsonl.tmp").replace(out / "sft.jsonl")
    with (out / "rl_prompts.jsonl.tmp").open("w") as f:
        for t in rl:
            f.write(json.dumps({"id": t["task_id"], "question": chat_message(t["prompt"]),
                                "test_cases": t["test_list"]}) + "\n")
    (out / "rl_prompts.jsonl.tmp").replace(out / "rl_prompts.jsonl")
    print(json.dumps({"sft": len(sft), "rl_prompts": len(rl), "out": str(out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
