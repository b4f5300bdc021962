"""Imported only by the fork server of :mod:`backend.executor`'s local pools (first in its
preload): a pool worker must never run the parent's ``__main__``.

multiprocessing starts each worker by re-running the parent's ``__main__`` script, so that
functions defined there can be unpickled. Streamlit installs every page script it runs as
``__main__`` (a module with the page's ``__file__`` and no ``__spec__``), so a worker started
after a page ran re-ran that page outside Streamlit; a page that needs a dataset name raises
there, the worker died, and every later parallel build in that server failed ("a process in the
process pool was terminated abruptly"). Units are module-level functions of importable modules
(:class:`backend.executor.Unit`), never ``__main__``'s, so the workers skip that step.
"""

from __future__ import annotations

import multiprocessing.spawn as _spawn


def _keep_main(*_args: object) -> None:
    """In place of multiprocessing's ``_fixup_main_from_path`` / ``_fixup_main_from_name``."""


_spawn._fixup_main_from_path = _keep_main
_spawn._fixup_main_from_name = _keep_main
