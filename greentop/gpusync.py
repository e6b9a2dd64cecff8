"""Wait for queued GPU work at a measurement edge, so a window's energy is that of its own work.

CUDA calls return before the GPU has run them: without a synchronisation at the edges a window
ends while its kernels still run (their energy lands in the next window) and starts while the
previous window's kernels still run. ``sync="torch"`` calls ``torch.cuda.synchronize()``, but only
when torch is already imported and CUDA already initialised: measuring must never import torch
(seconds) nor create a CUDA context (hundreds of MB of GPU memory) in a process that had none.
"""

from __future__ import annotations

import sys
from typing import Callable

Sync = str | Callable[[], object] | None
"""``None`` (no wait), ``"torch"``, or any callable that returns once the device is idle."""

SYNC_NAMES = ("torch",)


def torch_synchronize() -> bool:
    """``torch.cuda.synchronize()`` if torch is imported and CUDA initialised; True if it ran."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None) if torch is not None else None
    if cuda is None or not cuda.is_initialized():
        return False
    cuda.synchronize()
    return True


def resolve(sync: Sync) -> Callable[[], object] | None:
    """The function to call at each edge for ``sync`` (None: nothing). Raises ValueError for an
    unknown name, at the call that names it rather than at the first edge."""
    if sync is None:
        return None
    if callable(sync):
        return sync
    if sync == "torch":
        return torch_synchronize
    raise ValueError(f"sync must be None, a callable or one of {', '.join(SYNC_NAMES)}; got {sync!r}")
