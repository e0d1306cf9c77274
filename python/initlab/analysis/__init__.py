"""Variance analysis: what an initialization does to the signal, measured and predicted.

- :func:`analyze` runs an :mod:`initlab.nn` model forward and backward and returns a
  :class:`Trace` of per-layer statistics (``table()``, ``to_dict()``, ``plot()``, ``diagnose()``,
  which returns a :class:`Diagnosis`: the list of :class:`Finding`, one sentence each).
- :func:`predict` gives the mean-field theory for MLPs (Poole et al. 2016; Schoenholz et al. 2017).
- :func:`jacobian_spectrum` gives the singular values of the input-output Jacobian
  (dynamical isometry, Pennington et al. 2017).
"""

from .theory import JacobianSpectrum, MeanFieldPrediction, jacobian_spectrum, predict
from .stability import Stability, depth_stability
from .trace import Diagnosis, Finding, LayerTrace, Trace, analyze

__all__ = [
    "analyze",
    "Trace",
    "LayerTrace",
    "Finding",
    "Diagnosis",
    "predict",
    "MeanFieldPrediction",
    "jacobian_spectrum",
    "JacobianSpectrum",
    "depth_stability",
    "Stability",
]
