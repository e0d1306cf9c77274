"""Initialization schemes for deep residual and transformer networks, and proxy optimization.

Every scheme takes an :mod:`initlab.nn` network or a ``torch.nn.Module``, changes it in place
and returns an :class:`initlab.manifest.Manifest` (or, for the optimizing schemes, a report
that carries one): each parameter touched and each scalar added, with the rule and the
resulting std or scale, so it can be checked against the paper line by line.

- :func:`fixup`, :func:`skipinit`, :func:`rezero`, :func:`zero_init_residual`,
  :func:`scaled_residual` (GPT-2, DeepNet) - :mod:`initlab.schemes.residual`
- :func:`t_fixup` - :mod:`initlab.schemes.transformer`
- :func:`gradinit`, :func:`metainit` - :mod:`initlab.schemes.proxy`
- :func:`grow` (Net2Net) - :mod:`initlab.schemes.grow`
"""

from .residual import fixup, rezero, scaled_residual, skipinit, zero_init_residual
from .grow import grow
from .proxy import ProxyReport, gradient_quotient, gradinit, metainit
from .transformer import t_fixup

__all__ = ["fixup", "skipinit", "rezero", "zero_init_residual", "scaled_residual", "t_fixup", "gradinit", "metainit",
           "ProxyReport", "gradient_quotient", "grow"]
