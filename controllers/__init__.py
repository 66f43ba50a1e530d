"""Controllers, made by name: ``controllers.make(name, space, seed=0, **kwargs)``.

Importing this package registers every built-in controller; ``names()`` lists them.
"""

from .base import CONTROLLERS, CategoricalPolicy, Controller, get, make, mean_entropy, names, register
from . import random_search  # noqa: F401  (registers)

__all__ = ["CONTROLLERS", "CategoricalPolicy", "Controller", "get", "make", "mean_entropy", "names", "register"]
