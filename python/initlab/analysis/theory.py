"""Theory beside measurement: mean-field signal propagation and the input-output Jacobian."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..nn import Activation, Identity, Linear, Module, Sequential

__all__ = ["predict", "MeanFieldPrediction", "jacobian_spectrum", "JacobianSpectrum"]

# Gauss-Hermite nodes. An even count keeps a node off z = 0, where ReLU-like functions have a
# kink (an odd rule gives E[relu'(z)^2] = 0.45 instead of 0.5); symmetric nodes make the ReLU
# figures exact.
_GH_POINTS = 150


@functools.lru_cache(maxsize=1)
def _nodes() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.hermite_e.hermegauss(_GH_POINTS)  # an eigenproblem: compute once


def _gauss_expect(f: Any, q: float) -> float:
    """E[f(z)] for z ~ N(0, q), by Gauss-Hermite quadrature (probabilists' weight exp(-x^2/2))."""
    x, w = _nodes()
    z = math.sqrt(max(q, 0.0)) * x
    return float(np.dot(w, f(z)) / math.sqrt(2.0 * math.pi))


@dataclass
class MeanFieldPrediction:
    """Mean-field predictions for each Linear layer of an MLP.

    Attributes
    ----------
    names : list of str
        Qualified names of the Linear layers, input side first.
    q : ndarray
        Predicted mean square of each layer's pre-activations, ``q_l``.
    post_ms : ndarray
        Predicted mean square of the activations that follow, ``E[phi(z)^2]``.
    chi : ndarray
        ``sigma_w^2 * E[phi'(z)^2]`` with z ~ N(0, q_l) and the next layer's sigma_w^2 (the
        layer's own for the last): the factor by which the gradients' mean square grows per
        layer going backward (at constant width). ``chi < 1``: ordered phase, gradients
        vanish; ``chi > 1``: chaotic phase, they explode (Schoenholz et al. 2017).
    sigma_w2, sigma_b2 : ndarray
        The weights' ``fan_in * mean(W^2)`` and the biases' ``mean(b^2)``, read from the model.
    input_var : float
        The ``q_0`` the propagation started from.
    """

    names: list[str]
    q: np.ndarray
    post_ms: np.ndarray
    chi: np.ndarray
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    input_var: float
    activations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {
            "names": list(self.names),
            "q": self.q.tolist(),
            "post_ms": self.post_ms.tolist(),
            "chi": self.chi.tolist(),
            "sigma_w2": self.sigma_w2.tolist(),
            "sigma_b2": self.sigma_b2.tolist(),
            "input_var": self.input_var,
            "activations": list(self.activations),
        }


def _mlp_layers(model: Module) -> list[tuple[str, Linear, Module]]:
    """(name, Linear, following activation) triples of a Sequential of Linear and activations."""
    if not isinstance(model, Sequential):
        raise ValueError(f"predict supports MLPs (an initlab.nn.Sequential of Linear and activations), got {type(model).__name__}")
    out: list[tuple[str, Linear, Module]] = []
    for name, m in model.named_children():
        if isinstance(m, Linear):
            out.append((name, m, Identity()))
        elif isinstance(m, (Activation, Identity)):
            if not out or not isinstance(out[-1][2], Identity):
                raise ValueError(f"predict: activation at position {name} does not follow a Linear layer")
            out[-1] = (out[-1][0], out[-1][1], m)
        else:
            raise ValueError(
                f"predict supports MLPs (Linear and elementwise activations only); layer {name} is {type(m).__name__}"
            )
    if not out:
        raise ValueError("predict: the model has no Linear layer")
    return out


def _phi(act: Module) -> tuple[Any, Any]:
    if isinstance(act, Identity):
        return (lambda z: z), (lambda z: np.ones_like(z))
    return act.phi, act.dphi  # type: ignore[attr-defined]


def predict(model: Module, input_var: float) -> MeanFieldPrediction:
    """Mean-field propagation of the signal through an MLP (Poole et al. 2016; Schoenholz et al. 2017).

    With each layer's ``sigma_w^2 = fan_in * mean(W^2)`` and ``sigma_b^2 = mean(b^2)`` read
    from the model, ``q_1 = sigma_w^2 * input_var + sigma_b^2`` and

        q_l = sigma_w^2 * E[phi(z)^2] + sigma_b^2,   z ~ N(0, q_{l-1}),

    with the expectations by Gauss-Hermite quadrature; ``chi = sigma_w^2 * E[phi'(z)^2]``.

    Parameters
    ----------
    model : initlab.nn.Sequential
        Linear layers, each optionally followed by one elementwise activation.
    input_var : float
        Mean square of the input features (their variance for centred inputs),
        e.g. ``np.mean(x**2)``.

    Returns
    -------
    MeanFieldPrediction

    Raises
    ------
    ValueError
        If the model is not such an MLP or ``input_var`` is negative or not finite.

    Notes
    -----
    The theory holds for wide layers with i.i.d. weights; deviations of a few percent at width
    ~1000 are expected from finite width (and larger ones at width ~10).
    """
    input_var = float(input_var)
    if not math.isfinite(input_var) or input_var < 0:
        raise ValueError(f"input_var must be a finite number >= 0, got {input_var}")
    layers = _mlp_layers(model)
    n = len(layers)
    sw2 = np.array([lin.in_features * float(np.mean(lin.weight.astype(np.float64) ** 2)) for _, lin, _ in layers])
    sb2 = np.array([float(np.mean(lin.bias.astype(np.float64) ** 2)) if lin.bias is not None else 0.0 for _, lin, _ in layers])
    q, post, chi = np.empty(n), np.empty(n), np.empty(n)
    prev = input_var
    for i, (_, _, act) in enumerate(layers):
        q[i] = sw2[i] * prev + sb2[i]
        phi, dphi = _phi(act)
        post[i] = _gauss_expect(lambda z: phi(z) ** 2, q[i])
        nxt = sw2[i + 1] if i + 1 < n else sw2[i]
        chi[i] = nxt * _gauss_expect(lambda z: dphi(z) ** 2, q[i])
        prev = post[i]
    return MeanFieldPrediction(
        names=[name for name, _, _ in layers], q=q, post_ms=post, chi=chi, sigma_w2=sw2, sigma_b2=sb2,
        input_var=input_var, activations=[type(a).__name__ for _, _, a in layers],
    )


@dataclass
class JacobianSpectrum:
    """Singular values of the input-output Jacobian of each sample.

    Attributes
    ----------
    singular_values : ndarray, shape (n_samples, min(n_out, n_in))
    mean_sq : float
        Mean of the squared singular values (over samples and values): 1 means the network
        preserves the norm of perturbations on average.
    var_sq : float
        Variance of the squared singular values: the spread of the spectrum (dynamical
        isometry, Pennington et al. 2017, wants ``mean_sq ~ 1`` and a small spread).
    max, min : float
        Largest and smallest singular value over all samples.
    """

    singular_values: np.ndarray
    mean_sq: float
    var_sq: float
    max: float
    min: float

    @property
    def condition(self) -> float:
        """Largest over smallest singular value (inf when one is 0)."""
        return self.max / self.min if self.min > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (without the singular values themselves)."""
        return {"mean_sq": self.mean_sq, "var_sq": self.var_sq, "max": self.max, "min": self.min, "condition": self.condition}


def jacobian_spectrum(model: Module, x: Any) -> JacobianSpectrum:
    """Singular values of ``d model(x_n) / d x_n`` for every sample ``x_n`` of the batch.

    The Jacobian is built row by row with one backward pass per output unit (each pass gives
    that row for every sample at once), so samples must not interact: put BatchNorm layers in
    evaluation mode first.

    Parameters
    ----------
    model : initlab.nn.Module
    x : array_like, shape (n_samples, ...)
        A 1-d input is one sample.

    Returns
    -------
    JacobianSpectrum
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    y = model.forward(x)
    n = x.shape[0]
    n_out, n_in = int(np.prod(y.shape[1:])), int(np.prod(x.shape[1:]))
    jac = np.empty((n, n_out, n_in))
    for k in range(n_out):
        dy = np.zeros((n, n_out))
        dy[:, k] = 1.0
        jac[:, k, :] = model.backward(dy.reshape(y.shape)).reshape(n, n_in)
    model.zero_grad()  # the passes above are not a training step
    s = np.linalg.svd(jac, compute_uv=False)
    s2 = s**2
    return JacobianSpectrum(singular_values=s, mean_sq=float(s2.mean()), var_sq=float(s2.var()), max=float(s.max()), min=float(s.min()))
