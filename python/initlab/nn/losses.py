"""Loss functions for training :mod:`initlab.nn` networks: value and gradient in one call."""

from __future__ import annotations

import numpy as np

__all__ = ["softmax_cross_entropy", "log_softmax"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log(softmax(logits))`` along the last axis, computed stably (max subtracted first)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of integer class labels, and its gradient w.r.t. the logits.

    Parameters
    ----------
    logits : ndarray, shape (n, n_classes)
    labels : ndarray of int, shape (n,)
        Class indices in ``[0, n_classes)``.

    Returns
    -------
    loss : float
        ``-mean(log softmax(logits)[i, labels[i]])`` (natural log; ``log(n_classes)`` for uniform
        predictions).
    grad : ndarray, shape (n, n_classes)
        ``(softmax(logits) - onehot(labels)) / n``.

    Raises
    ------
    ValueError
        Shapes that do not match, or labels outside ``[0, n_classes)`` (all offenders listed).
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (n, n_classes) and labels (n,), got {logits.shape} and {labels.shape}")
    k = logits.shape[1]
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if bad.size:
        raise ValueError(f"labels must lie in [0, {k}); offending positions {bad.tolist()} with values {labels[bad].tolist()}")
    n = logits.shape[0]
    lp = log_softmax(logits)
    rows = np.arange(n)
    loss = float(-lp[rows, labels].mean())
    grad = np.exp(lp)
    grad[rows, labels] -= 1.0
    grad /= n
    return loss, grad
