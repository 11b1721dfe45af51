"""tools/notify_receivers.py (local stand-ins of every notification service) as a module for
the tests; tools/ is not a package."""
from __future__ import annotations

import importlib.util
import sys

from tests.support.fake import REPO

NAME = "notify_receivers"
if NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(NAME, REPO / "tools" / "notify_receivers.py")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[NAME] = _module
    _spec.loader.exec_module(_module)
receivers = sys.modules[NAME]
