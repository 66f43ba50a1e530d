"""Controllers, made by name: ``controllers.make(name, space, seed=0, **kwargs)``.

Importing this package registers every built-in controller; ``names()`` lists them.
"""

from .base import (CONTROLLERS, REWARD_LIMIT, BestSoFar, CategoricalPolicy, Controller, check_kwargs, clip_signal,
                   get, hyperparameters, make, mean_entropy, names, register)
from . import random_search  # noqa: F401  (registers)
from . import rnn  # noqa: F401  (registers)
from . import gradient  # noqa: F401  (registers darts, snas, gdas, proxyless)
from . import reinforce  # noqa: F401  (registers)
from . import asng  # noqa: F401  (registers)
from . import credit  # noqa: F401  (registers)
from . import ga  # noqa: F401  (registers)

__all__ = ["CONTROLLERS", "REWARD_LIMIT", "clip_signal", "BestSoFar", "CategoricalPolicy", "Controller", "check_kwargs", "get",
           "hyperparameters", "make", "mean_entropy", "names", "register"]
