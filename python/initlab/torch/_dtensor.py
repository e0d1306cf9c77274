"""DTensor parameters (FSDP2, tensor parallel): the one block of the global tensor a rank holds.

initlab's fills take ``global_shape=``/``offset=``: a block filled alone equals that block of
the whole tensor's fill. :func:`local_shard` reads a DTensor's placements and returns its local
tensor with the global shape and the offset of the local block, so each rank fills only its
shard, with fans from the global shape, no communication and no full-size tensor anywhere; the
gathered tensor then equals the single-process fill bit for bit.

Only placements that make the local data one rectangular block of the global tensor are
accepted: ``Shard(d)`` (even or uneven, torch's chunking) and ``Replicate()``, on any
``DeviceMesh`` of any number of dimensions, including several mesh dimensions sharding the
same tensor dimension. ``Partial`` (the local tensor is a summand, not a block) and strided
shards (``_StridedShard``: the local rows are interleaved, not contiguous) are refused.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["local_shard", "check_placements"]


def _dtensor_type() -> Any:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch built without distributed support
        return None
    return DTensor


def check_placements(placements: Any, *, name: str = "parameter") -> None:
    """Raise ``ValueError`` unless every placement is ``Shard(d)`` (not strided) or ``Replicate()``.

    The message lists every offending mesh dimension and says why it cannot be one block.
    """
    from torch.distributed.tensor import Replicate, Shard

    try:
        from torch.distributed.tensor.placement_types import _StridedShard
    except ImportError:  # pragma: no cover - older torch
        _StridedShard = ()
    bad = []
    for dim, pl in enumerate(placements):
        if _StridedShard and isinstance(pl, _StridedShard):
            bad.append(f"mesh dim {dim}: {pl} (a strided shard interleaves rows, so the local data is not one block)")
        elif isinstance(pl, Shard) and type(pl) is Shard:
            continue
        elif isinstance(pl, Replicate):
            continue
        elif pl.is_partial():
            bad.append(f"mesh dim {dim}: {pl} (a partial tensor holds summands, not a block of values)")
        else:
            bad.append(f"mesh dim {dim}: {pl} (not Shard(d) or Replicate())")
    if bad:
        raise ValueError(
            f"cannot initialize DTensor {name} shard by shard: its placements {tuple(placements)} are not one block "
            f"of the global tensor on each rank; accepted: Shard(d) and Replicate(). Offending: " + "; ".join(bad)
        )


def local_shard(p: Any, *, name: str = "parameter") -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]] | None:
    """The local block of a DTensor parameter, with its place in the global tensor.

    Parameters
    ----------
    p : torch.Tensor
        A ``DTensor`` (or an ``nn.Parameter`` wrapping one, as FSDP2 and tensor parallelism
        create) or a plain tensor.
    name : str, keyword-only
        Used in error messages (e.g. the parameter's qualified name).

    Returns
    -------
    (local, global_shape, offset) or None
        ``local``: the rank's local tensor, sharing storage with ``p`` (fill it in place);
        ``global_shape``: ``tuple(p.shape)``; ``offset``: where ``local`` starts in the global
        tensor, one entry per dimension. Pass them on as
        ``fill(local, ..., global_shape=global_shape, offset=offset)``. A rank that holds no
        data (outside the mesh, or an empty uneven shard) gets an empty ``local``: nothing to
        fill. ``None`` for a tensor that is not a DTensor.

    Raises
    ------
    ValueError
        ``Partial`` or strided-shard placements (every offender listed), or a local tensor
        whose shape is not the one its placements imply (e.g. padded shards).
    """
    DTensor = _dtensor_type()
    if DTensor is None or not isinstance(p, DTensor):
        return None
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    placements = tuple(p.placements)
    check_placements(placements, name=name)
    gshape = tuple(int(s) for s in p.shape)
    with torch.no_grad():
        local = p.to_local()
    lshape, offset = compute_local_shape_and_global_offset(gshape, p.device_mesh, placements)
    if len(offset) != len(gshape):
        # This rank is not part of the mesh: it holds nothing.
        return local.new_empty((0,) * len(gshape)), gshape, (0,) * len(gshape)
    lshape, offset = tuple(int(s) for s in lshape), tuple(int(o) for o in offset)
    if tuple(local.shape) != lshape:
        raise ValueError(f"DTensor {name}: the local tensor has shape {tuple(local.shape)} but its placements "
                         f"{placements} imply {lshape} (padded or inconsistent shards cannot be filled as one block)")
    # An empty shard's offset may point past the end; any in-range start describes "nothing".
    offset = tuple(min(o, g) if n == 0 else o for o, n, g in zip(offset, lshape, gshape))
    return local, gshape, offset
