"""Run a test body on several processes joined by a gloo process group, without teardown crashes.

torch's gloo backend sometimes aborts a rank while it is torn down (``terminate called without an
active exception``, SIGABRT; seen on loaded CI machines after every assertion had passed). A rank
here therefore never tears gloo down: once its body has returned, it waits on a barrier, then on
a file rendezvous that proves every rank is past that barrier (so no message is still in flight),
and leaves with ``os._exit(0)``. A body that raises still fails the test with its traceback
(torch's spawn writes it before the process exits).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RENDEZVOUS_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(body: Callable[..., Any], world: int, args: tuple = (), start_method: str = "spawn") -> None:
    """Call ``body(rank, world, *args)`` on ``world`` processes with a gloo group initialized.

    ``body`` must be a module-level function (it is pickled to the ranks).
    """
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="initlab-ranks-") as done:
        mp.start_processes(_rank_main, args=(body, world, free_port(), done, args), nprocs=world,
                           join=True, start_method=start_method)


def _rank_main(rank: int, body: Callable[..., Any], world: int, port: int, done: str, args: tuple) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")
    body(rank, world, *args)
    dist.barrier()
    Path(done, str(rank)).touch()
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
    while not all(Path(done, str(r)).exists() for r in range(world)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank {rank}: not every rank reached the end within {RENDEZVOUS_TIMEOUT_S} s")
        time.sleep(0.01)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
