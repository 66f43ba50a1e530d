"""nasgen: neural-architecture-search controllers against a one-shot supernet environment.

``from nasgen import searchspace, controllers`` gives the building blocks;
``import nasgen.envs`` registers the ``nasgen/...`` gymnasium ids.
"""

__version__ = "0.1.0"
