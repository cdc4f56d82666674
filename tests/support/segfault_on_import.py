"""A model whose loading always crashes the process: importing this module reads address 0."""

from __future__ import annotations

import ctypes

ctypes.string_at(0)
model = None
