"""The ``"staged"`` route: the C++ core fills host buffers, copied to the device chunk by chunk.

For any torch device (MPS, XPU, ROCm, CUDA without Triton, a future backend) and for anything
the device kernels do not cover. The destination is cut into C-ordered boxes of at most
``chunk_elements`` elements (``_layout.sub_blocks``); each box is filled by the core as the block
of the global tensor it is (``gstrides``/``gbase``: the same bits as a CPU fill), into one of two
pinned host buffers, and copied to its place on the device with ``non_blocking=True`` on a side
stream, so the core samples the next box while the previous one is in flight. On devices without
CUDA streams the copies are synchronous (same bits, no overlap).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._layout import sub_blocks

CHUNK_ELEMENTS = 1 << 22  # 4 Mi elements per host buffer (16 MiB in float32)


def fill(tensor: Any, gstrides: list[int], gbase: int, core_fill: Callable[[Any, list[int], int], None],
         chunk_elements: int | None = None) -> None:
    """Fill ``tensor`` box by box: ``core_fill(host_tensor, gstrides, gbase_of_box)`` fills a
    C-contiguous CPU tensor with the values of that box; it is then copied into place."""
    import torch

    if tensor.numel() == 0:
        return
    chunk_elements = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    dev = tensor.device
    cuda = dev.type == "cuda"
    pin = cuda and torch.cuda.is_available()
    n = min(chunk_elements, tensor.numel())
    bufs = [torch.empty(n, dtype=tensor.dtype, device="cpu", pin_memory=pin) for _ in range(2 if cuda else 1)]
    events: list[Any] = [None] * len(bufs)
    stream = torch.cuda.Stream(device=dev) if cuda else None
    if stream is not None:
        stream.wait_stream(torch.cuda.current_stream(dev))  # the tensor's earlier writes come first
    dst = tensor.detach()
    try:
        for i, box in enumerate(sub_blocks(tuple(tensor.shape), chunk_elements)):
            k = i % len(bufs)
            if events[k] is not None:
                events[k].synchronize()  # this buffer's previous copy has left the host
            shape = tuple(s.stop - s.start for s in box)
            host = bufs[k][: math.prod(shape)].view(shape)
            core_fill(host, gstrides, gbase + sum(s.start * g for s, g in zip(box, gstrides)))
            view = dst[box] if box else dst
            if stream is None:
                view.copy_(host)
            else:
                with torch.cuda.stream(stream):
                    view.copy_(host, non_blocking=True)
                    ev = torch.cuda.Event()
                    ev.record(stream)
                    events[k] = ev
    finally:
        if stream is not None:
            torch.cuda.current_stream(dev).wait_stream(stream)
            for ev in events:
                if ev is not None:
                    ev.synchronize()  # the host buffers stay alive until their copies are done
