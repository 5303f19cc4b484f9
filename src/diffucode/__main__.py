"""``python -m diffucode ...`` == ``diffucode ...``."""

import sys

from diffucode.cli import main

sys.exit(main())
