"""The offline, deterministic demo dataset: real photos, generated scenes, planted problems."""

from backend.demo.generate import generate

__all__ = ["generate"]
