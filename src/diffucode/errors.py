"""The one exception type for mistakes a user can fix (a bad flag, path, config key or file).

``diffucode.cli.main`` catches :class:`UserError` from every command and prints it as one line,
``diffucode <command>: error: <message>``, exiting with status 2, so no mistake reaches the user
as a traceback. The message names the flag, key, file (and line) and says what to do.
``ConfigError`` (config keys and values) and ``CheckpointError`` (model directories) are
subclasses. This module imports nothing, so raising it never pulls in torch.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""

    exit_code = 2


def check_output_dir(path, flag: str) -> None:
    """Refuse an output *directory* that is an existing file (before any work is done)."""
    from pathlib import Path

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p}: is an existing file, not a directory; pass a directory path")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {p}: {parent} is an existing file, not a directory")
            break


def check_output_file(path, flag: str) -> None:
    """Refuse an output *file* path that is an existing directory or sits under a file."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p}: is an existing directory; pass a file path")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {p}: {parent} is an existing file, not a directory")
            break


def resolve_device(device: str | None, flag: str = "--device") -> str:
    """``device`` checked against this machine (imports torch): None -> cuda if available, else cpu."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{flag} {device}: not a device name (cpu, cuda, cuda:1, mps)") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{flag} {device}: CUDA is not available here (torch {torch.__version__}, "
                            f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"{flag} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"{flag} {device}: MPS is not available here; use --device cpu")
    return device
