"""Values that used to slip through or crash inside torch: nan / inf decoding knobs are refused
by GenerationConfig (nan temperature was silently greedy), an empty batch is one clear error,
and the sandbox refuses a non-finite timeout."""

import math

import pytest
import torch

from diffucode.config import ConfigError
from diffucode.sampling import GenerationConfig


@pytest.mark.parametrize("field, flag", [("temperature", "--temperature"), ("alg_temp", "--alg-temp"),
                                         ("top_p", "--top-p"), ("threshold", "--threshold"), ("eps", "--eps")])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_decoding_values_are_refused(field, flag, value):
    with pytest.raises(ConfigError, match=rf"^{flag}: must be a finite number, got -?(nan|inf)$"):
        GenerationConfig(**{field: value})


def test_non_numeric_temperature_is_refused():
    with pytest.raises(ConfigError, match="--temperature: must be a finite number, got '0.5'"):
        GenerationConfig(temperature="0.5")


@pytest.mark.parametrize("attention", ["bidirectional", "block_causal"])
@pytest.mark.parametrize("ids", [torch.empty(0, 5, dtype=torch.long), [], [[]]])
def test_empty_batch_is_one_clear_error(attention, ids):
    from diffucode.models import build_tiny_model
    from diffucode.sampling import generate

    model, _ = build_tiny_model(attention=attention, block_len=4 if attention == "block_causal" else None)
    expected = "input_ids has no rows" if isinstance(ids, torch.Tensor) else "input_ids is empty"
    with pytest.raises(ValueError, match=expected):
        generate(model, ids, None, GenerationConfig(max_new_tokens=4))


@pytest.mark.parametrize("timeout", [math.inf, math.nan, 0, -1, 1e9])
def test_sandbox_refuses_timeouts_it_cannot_enforce(timeout):
    from diffucode.execution import SandboxConfig

    with pytest.raises(ValueError, match=r"SandboxConfig.timeout must be in \(0, 86400.0\] seconds"):
        SandboxConfig(timeout=timeout)
