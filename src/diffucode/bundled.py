"""The models shipped inside the package, by short name, and the resolution of ``--model``.

    load_model("nano")        # the default: DiffuCoder-nano, block diffusion B = 4 (+ SFT)
    load_model("nano-mdm")    # DiffuCoder-nano-MDM: bidirectional masked diffusion (+ SFT); infilling, dual cache

No torch here: commands resolve and check ``--model`` before importing anything heavy.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
# short name -> directory under assets/
BUNDLED = {
    "nano": "diffucoder-nano",
    "nano-mdm": "diffucoder-nano-mdm",
}
DEFAULT = "nano"


def bundled_model_path(name: str = DEFAULT) -> Path | None:
    """The directory of a bundled model, or None if this install does not have it."""
    d = ASSETS / BUNDLED[name]
    return d if (d / "config.json").is_file() else None


def resolve_model_path(path: str | Path) -> Path:
    """``path`` as a directory: a bundled short name (``nano``, ``nano-mdm``) unless a directory of
    that name exists here; otherwise the path itself (checked by the loader)."""
    p = Path(path)
    if str(path) in BUNDLED and not p.exists():
        found = bundled_model_path(str(path))
        if found is None:
            from diffucode.errors import UserError

            raise UserError(f"--model {path}: this install has no bundled {BUNDLED[str(path)]} "
                            f"(expected {ASSETS / BUNDLED[str(path)]})")
        return found
    return p


def missing_model_hint(path: str | Path) -> str:
    """What to tell a user whose model path does not exist."""
    s = str(path)
    names = ", ".join(BUNDLED)
    if s.count("/") == 1 and not s.startswith((".", "/", "~")) and not Path(s.split("/")[0]).exists():
        return (f"looks like a Hugging Face hub id; diffucode reads local directories only: download it first "
                f"(huggingface-cli download {s} --local-dir DIR) and pass --model DIR")
    return f"pass a model directory or a bundled name ({names})"
