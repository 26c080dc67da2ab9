"""Old spellings that still work: one warning, pointed at the user's own line.

Each deprecated option warns through :func:`warn_deprecated`, which finds the first frame
outside the ``agentkit`` package, so the warning names the caller's file and line however
deep in agentkit the old spelling was noticed (an entry point, a resume's setup, a
generator started later).
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["AgentKitDeprecationWarning", "warn_deprecated"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class AgentKitDeprecationWarning(DeprecationWarning):
    """An old agentkit spelling that still works until 0.1.0. A ``DeprecationWarning``, so
    it is filtered, shown and caught as one; its own class lets agentkit's test suite turn
    just these into errors (the docs and examples must use only the new spellings)."""


def warn_deprecated(message: str) -> None:
    """Warn ``message`` as a ``DeprecationWarning`` at the first caller outside agentkit."""
    level = 2
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(message, AgentKitDeprecationWarning, stacklevel=level)
