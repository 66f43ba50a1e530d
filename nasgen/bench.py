"""The former name of ``nasgen.nb1d`` (NAS-Bench-1D), kept so that code written against
``nasgen.bench.load`` and friends still runs. New code imports ``nasgen.nb1d``."""

from nasgen.nb1d import *  # noqa: F401,F403
from nasgen.nb1d import __all__  # noqa: F401
