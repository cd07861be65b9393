"""labelgate: find and fix label errors in text datasets, then export clean LLM fine-tuning files."""

from __future__ import annotations

__version__ = "0.1.0"
