"""The order desk's eval, offline: a scripted model on loopback that is wrong in a known
pattern (see scripted_desk.py), the real desk, tools and database, ``agentkit eval``.

    python examples/evals/offline.py                  # pass^1 0.625 ... pass^4 0.250
    python examples/evals/offline.py --html report.html --fail-under pass^1=0.9   # exits 1
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripted_desk import serve

from agentkit.cli import main

HERE = Path(__file__).resolve().parent


def run(argv: list[str]) -> int:
    """``agentkit eval desk_suite.py:suite -k 4 ARGV`` against the scripted model."""
    server = serve()
    try:
        os.environ["AGENTKIT_BASE_URL"] = server.base_url
        return main(["eval", f"{HERE / 'desk_suite.py'}:suite", "-k", "4", *argv])
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
