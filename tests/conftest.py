"""Shared test set-up: quiet progress bars, one artifact cache for nbval and the book test."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HIPAUG_PROGRESS", "0")
os.environ.setdefault("HIPAUG_ARTIFACTS", str(ROOT / "artifacts"))


