"""OpenMP wait policy for initlab's core, decided before the OpenMP runtime loads.

libgomp reads ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` once, when it is loaded (with
``initlab._core``). Unset, a worker thread that reaches a barrier spins 300,000 times before it
sleeps; on an oversubscribed machine (more runnable threads than cores) the spinning threads
take the cores from the ones doing the work, and a fill ran at 0.02x NumPy's speed where
``--threads 1`` held (issue 19 item 18). When the user has set neither variable, initlab sets a
bounded spin (``GOMP_SPINCOUNT=10000``, some microseconds: a barrier between back-to-back
parallel regions is still caught while spinning, and a thread that waits longer sleeps). A value
the user set is never changed, and nothing is set when the runtime is already loaded (then it
would have no effect) — this module must be imported before ``initlab._core``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

__all__ = ["SPINCOUNT", "apply"]

#: The bounded spin count initlab sets when the user has set no wait policy.
SPINCOUNT = "10000"


def apply(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set ``GOMP_SPINCOUNT`` in ``environ`` (default ``os.environ``) unless ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` is already set; return whether it was set."""
    env = os.environ if environ is None else environ
    if env.get("OMP_WAIT_POLICY", "").strip() or env.get("GOMP_SPINCOUNT", "").strip():
        return False
    env["GOMP_SPINCOUNT"] = SPINCOUNT
    return True


#: Whether this import set the policy (False: the user's setting, or the core already loaded).
applied = False if "initlab._core" in sys.modules else apply()
