"""Small NumPy networks with forward and backward passes, for studying initialization.

Every module computes in float64 by default, keeps what its backward pass needs from the last
forward call, and accumulates parameter gradients in ``module.grads``. Parameters are named
torch-style (``"0.weight"``, ``"2.branch.1.bias"``) and initialized with torch's defaults
through initlab's initializers.

>>> import numpy as np, initlab
>>> net = initlab.nn.mlp(5, 10, depth=3, seed=0)
>>> y = net(np.ones((2, 5)))
>>> dx = net.backward(np.ones_like(y))
"""

from .activations import GELU, SELU, Activation, LeakyReLU, ReLU, Sigmoid, Tanh, get_activation
from .builders import GlobalAvgPool, init_weights, mlp, residual_mlp, resnet
from .layers import BatchNorm, Conv2d, LayerNorm, Linear, ScalarBias
from .module import Flatten, Identity, Module, Residual, Sequential

__all__ = [
    "Module",
    "Sequential",
    "Residual",
    "Identity",
    "Flatten",
    "Linear",
    "Conv2d",
    "LayerNorm",
    "BatchNorm",
    "ScalarBias",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "SELU",
    "GELU",
    "GlobalAvgPool",
    "get_activation",
    "mlp",
    "residual_mlp",
    "resnet",
    "init_weights",
]
