"""``python -m agentkit.cli``: the ``agentkit`` command."""

import sys

from . import main

sys.exit(main())
