"""Tailscope's library: ingest, store, query and export image–text datasets.

No Streamlit import anywhere under this package: the CLI, the tests and the app all call it.
"""

__version__ = "0.1.0"
