"""Streamlit-only helpers for the Tailscope app: page setup, state, cards and filters.

Everything here draws widgets and calls :mod:`backend`; no SQL and no array math live here.
"""
