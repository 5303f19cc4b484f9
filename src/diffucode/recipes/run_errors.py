"""The shared error handling of the config-driven run commands (``train``, ``rl``).

Mistakes of the user (bad config, a previous stage not run, bad data) are one line and exit 2;
faults of the run directory (a locked run, a full disk, a damaged checkpoint) are one line and
exit 1; anything else is a bug and keeps its traceback. The cheap checks that need no model run
before torch is imported.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

_EXIT_BY_STATUS = {"finished": 0, "stopped": 0, "diverged": 3}


def run_config_recipe(command: str, run: Callable[[], Any], cfg: Any, data_errors: Callable[[], tuple[type, ...]]) -> int:
    """Check ``cfg``'s output and init paths, call ``run()`` and map its outcome to an exit code.

    ``data_errors`` returns the recipe's data-error classes; it is called only when something
    failed, so their modules (and torch) are not imported for the checks that come first.
    """
    from diffucode.errors import UserError, check_output_dir
    from diffucode.fileio import OutOfSpaceError, RunDirLockedError
    from diffucode.shipped_configs import check_init_from
    from diffucode.training.checkpoint import CheckpointError

    try:
        check_output_dir(cfg.output_dir, "output_dir")
        check_init_from(cfg.model.init_from)
        result = run()
    except UserError as e:  # ConfigError, CheckpointError (init_from is not a model), ...
        print(f"diffucode {command}: {e}", file=sys.stderr)
        return 2
    except (CheckpointError, OutOfSpaceError, RunDirLockedError) as e:  # faults of the run directory
        print(f"diffucode {command}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if isinstance(e, data_errors()):
            print(f"diffucode {command}: data error: {e}", file=sys.stderr)
            return 2
        raise
    return _EXIT_BY_STATUS[result.status]
