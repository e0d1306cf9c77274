"""DTensor parameters (FSDP2, tensor parallel): the one block of the global tensor a rank holds.

initlab's fills take ``global_shape=``/``offset=``: a block filled alone equals that block of
the whole tensor's fill. :func:`local_shard` reads a DTensor's placements and returns its local
tensor with the global shape and the offset of the local block, so each rank fills only its
shard, with fans from the global shape, no communication and no full-size tensor anywhere; the
gathered tensor then equals the single-process fill bit for bit.

Accepted: placements that make the local data one rectangular block of the global tensor —
``Shard(d)`` (even or uneven, torch's chunking) and ``Replicate()`` on any ``DeviceMesh`` of any
number of dimensions, several mesh dimensions sharding the same tensor dimension, and the
strided shards (``_StridedShard``) that FSDP2 puts on top of tensor parallelism, whenever the
rank's indices along every dimension are contiguous (they are for FSDP2 + TP: the dp split is
applied inside each tp chunk). Refused, naming every offender: ``Partial`` (the local tensor is
a summand, not a block), other placement types, and strided shards whose local indices are
interleaved.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["local_shard", "check_placements"]

_StridedShard: type[Any] | None
try:  # torch >= 2.6
    from torch.distributed.tensor.placement_types import _StridedShard
except ImportError:  # pragma: no cover
    _StridedShard = None


def _dtensor_type() -> Any:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch built without distributed support
        return None
    return DTensor


def check_placements(placements: Any, *, name: str = "parameter") -> None:
    """Raise ``ValueError`` unless every placement is ``Shard(d)``, a strided shard or ``Replicate()``.

    The message lists every offending mesh dimension and says why it cannot be one block.
    (Whether a strided shard's local indices are contiguous depends on the rank; see
    :func:`local_shard`.)
    """
    from torch.distributed.tensor import Replicate, Shard

    bad = []
    for dim, pl in enumerate(placements):
        if isinstance(pl, (Shard, Replicate)) or (_StridedShard is not None and isinstance(pl, _StridedShard)):
            continue
        if pl.is_partial():
            bad.append(f"mesh dim {dim}: {pl} (a partial tensor holds summands, not a block of values)")
        else:
            bad.append(f"mesh dim {dim}: {pl} (not Shard(d), a strided shard or Replicate())")
    if bad:
        raise ValueError(
            f"cannot initialize DTensor {name} shard by shard: its placements {tuple(placements)} are not one block "
            f"of the global tensor on each rank; accepted: Shard(d) and Replicate(). Offending: " + "; ".join(bad)
        )


def _global_indices(gshape: tuple[int, ...], mesh: Any, placements: tuple) -> dict[int, torch.Tensor] | None:
    """For each sharded tensor dimension, the global indices this rank holds (torch's own
    left-to-right shard arithmetic, strided shards included); None outside the mesh."""
    from torch.distributed.tensor import Shard

    coord = mesh.get_coordinate()
    if coord is None:
        return None
    try:
        from torch.distributed.tensor._utils import _get_shard_size_and_offsets
    except ImportError:  # pragma: no cover - a torch without the helper: plain shards only
        return _plain_indices(gshape, mesh, placements)
    sizes: list[int] = list(gshape)
    index: dict[int, torch.Tensor] = {}
    for mdim, pl in enumerate(placements):
        if not (isinstance(pl, Shard) or (_StridedShard is not None and isinstance(pl, _StridedShard))):
            continue
        d = pl.dim
        n, offs = _get_shard_size_and_offsets(sizes[d], mesh.size(mdim), coord[mdim], pl, index.get(d), gshape[d],
                                              False)
        assert offs is not None  # skip_offset=False: torch always returns the offsets
        sizes[d] = int(n)
        index[d] = offs if n else torch.arange(0)
    return index


def _plain_indices(gshape: tuple[int, ...], mesh: Any, placements: tuple) -> dict[int, torch.Tensor]:  # pragma: no cover
    # Fallback through the public helper: exact for Shard/Replicate, which always give one block.
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    if _StridedShard is not None and any(isinstance(pl, _StridedShard) for pl in placements):
        raise ValueError(f"this torch version cannot describe the strided shards of {placements} as one block")
    lshape, offset = compute_local_shape_and_global_offset(gshape, mesh, placements)
    return {d: torch.arange(offset[d], offset[d] + lshape[d]) for d in range(len(gshape))}


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
        ``local``: the rank's local tensor, sharing storage with ``p`` and on its device (CPU,
        CUDA, ...: fill it in place, each initlab fill routes by device, same bits everywhere);
        ``global_shape``: ``tuple(p.shape)``; ``offset``: where ``local`` starts in the global
        tensor, one entry per dimension. Pass them on as
        ``fill(local, ..., global_shape=global_shape, offset=offset)``. A rank that holds no
        data (outside the mesh, or an empty uneven shard) gets an empty ``local``: nothing to
        fill. ``None`` for a tensor that is not a DTensor.

    Raises
    ------
    ValueError
        ``Partial`` or unknown placements (every offender listed), a strided shard that
        interleaves this rank's indices (every such dimension listed), or a local tensor whose
        shape is not the one its placements imply (e.g. padded shards).
    """
    DTensor = _dtensor_type()
    if DTensor is None or not isinstance(p, DTensor):
        return None
    placements = tuple(p.placements)
    check_placements(placements, name=name)
    gshape = tuple(int(s) for s in p.shape)
    with torch.no_grad():
        local = p.to_local()
    index = _global_indices(gshape, p.device_mesh, placements)
    if index is None:
        # This rank is not part of the mesh: it holds nothing.
        return local.new_empty((0,) * len(gshape)), gshape, (0,) * len(gshape)
    lshape, offset, interleaved = list(gshape), [0] * len(gshape), []
    for d, idx in sorted(index.items()):
        # Plain ints: torch builds the index tensors wherever a default-device context puts them.
        held = [int(i) for i in idx.reshape(-1).tolist()]
        lshape[d] = len(held)
        if held:
            offset[d] = held[0]
            if held != list(range(held[0], held[0] + len(held))):
                interleaved.append(f"dim {d}: global indices {held[:8]}{' ...' if len(held) > 8 else ''}")
    if interleaved:
        raise ValueError(
            f"cannot initialize DTensor {name} shard by shard: with placements {placements} this rank's data is not "
            "one block of the global tensor (a strided shard interleaves it): " + "; ".join(interleaved))
    if tuple(local.shape) != tuple(lshape):
        raise ValueError(f"DTensor {name}: the local tensor has shape {tuple(local.shape)} but its placements "
                         f"{placements} imply {tuple(lshape)} (padded or inconsistent shards cannot be filled as one "
                         "block)")
    return local, gshape, tuple(offset)
