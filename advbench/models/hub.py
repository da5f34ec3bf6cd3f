"""The Hugging Face hub: is it reachable, and offline mode for one block of code.

huggingface_hub retries an unreachable hub for about 46 s before failing; offline (``HF_HUB_OFFLINE=1``) it
answers from its cache at once. Offline mode is set only around the call that needs it (:func:`hub_offline`)
and restored afterwards, so it never leaks into the rest of the process.
"""

from __future__ import annotations

import os
import socket
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Iterator

HUB_HOST = ("huggingface.co", 443)
OFFLINE_ENV = "HF_HUB_OFFLINE"


def hub_reachable(timeout: float = 1.5) -> bool:
    """Can we open a TCP connection to the Hugging Face hub? (Respects ``HF_HUB_OFFLINE``.)"""
    if os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def hub_offline() -> Iterator[None]:
    """Within the block, huggingface_hub answers from its cache without network retries (~46 s otherwise).

    Sets ``HF_HUB_OFFLINE=1`` and huggingface_hub's constant (read once, when it is first imported), and
    restores both on the way out, error or not: offline mode never leaks into the rest of the process.
    """
    import huggingface_hub.constants as constants  # a dependency of timm

    saved_env, saved_constant = os.environ.get(OFFLINE_ENV), constants.HF_HUB_OFFLINE
    os.environ[OFFLINE_ENV] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_constant
        if saved_env is None:
            os.environ.pop(OFFLINE_ENV, None)
        else:
            os.environ[OFFLINE_ENV] = saved_env


def offline_unless_reachable() -> AbstractContextManager[None]:
    """:func:`hub_offline` when the Hugging Face hub is unreachable, else a block that changes nothing."""
    return nullcontext() if hub_reachable() else hub_offline()
