"""The bundled DiffuCoder-nano model ships inside the package, is small, loads by default and decodes."""

import json

import torch

from diffucode.models import default_model_path, load_model
from diffucode.sampling import GenerationConfig, generate


def test_bundled_model_is_present_and_small():
    path = default_model_path()
    assert path is not None, "src/diffucode/assets/diffucoder-nano is missing"
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size <= 25 * 2**20
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["dtype"] == "float16" and cfg["diffusion_attention"] in ("bidirectional", "block_causal")


def test_bundled_model_loads_and_generates():
    model, tok = load_model(default_model_path())
    assert model.dtype == torch.float32  # half precision on disk, float32 on the CPU
    ids = tok("def is_palindrome(s):\n", return_tensors="pt").input_ids
    out = generate(model, ids, config=GenerationConfig(max_new_tokens=12))
    gen = out.sequences[0, ids.shape[1]:]
    assert gen.shape[0] == 12 and not (gen == model.mask_token_id).any()
    assert tok.mask_token_id == model.mask_token_id and tok.chat_template


def test_bundled_model_writes_the_quick_start_function():
    """The README's quick start (`diffucode generate "def is_palindrome(s):"`) prints working code."""
    from diffucode.recipes.generate import main

    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--json", "def is_palindrome(s):"]) == 0
    completion = json.loads(buf.getvalue())["completion"]
    namespace: dict = {}
    exec("def is_palindrome(s):\n" + completion, namespace)  # noqa: S102 - our own model's output, in a test
    f = namespace["is_palindrome"]
    assert f("abba") and f("racecar") and not f("abc")


def test_rl_init_from_takes_the_bundled_name():
    # `diffucode rl model.init_from=nano` fine-tunes the bundled model, as `diffucode train` does
    from diffucode.recipes.rl import RLConfig, _build_model
    from diffucode.shipped_configs import check_init_from

    check_init_from("nano")  # the pre-flight check accepts the name (no file called "nano" here)
    cfg = RLConfig()
    cfg.model.init_from = "nano"
    model, tok = _build_model(cfg)
    bundled, _ = load_model(default_model_path())
    assert model.attention == bundled.attention == "block_causal"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), bundled.state_dict().values()))
