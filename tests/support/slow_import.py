"""A model that takes a while to load: importing this module sleeps (start-up tests)."""

from __future__ import annotations

import time

from faults import CrashingModel

#: Seconds the import takes.
SECONDS = 3.0

time.sleep(SECONDS)
model = CrashingModel()
