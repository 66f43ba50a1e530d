"""Gymnasium environments; importing this package registers the ``nasgen/...`` ids.

- ``nasgen/OneShotNAS-v0``: one step = one architecture, rewarded by the shared-weight supernet.
- ``nasgen/TeacherArch-v0``: the AdvantageNAS toy with a hidden optimal architecture.
- ``nasgen/OneShotNASSeq-v0``: OneShotNAS as an autoregressive episode, one decision per step.
- ``nasgen/SeqTarget-v0``: the report's RNN toy, one token per step against a target sequence.
- ``nasgen/NASBenchGraph-v0``: rewards from the NAS-Bench-Graph table (extra ``bench``).
- ``nasgen/Tabular-v0``: rewards from a NAS-Bench-1D table of ``nasgen.nb1d`` (``table=``).
"""

import inspect
from typing import Optional

import gymnasium as gym

from nasgen.interfaces import class_is_differentiable

from .base import ArchitectureEnv
from .oneshot import OneShotNASEnv
from .teacher import TeacherArchEnv, TeacherModel

# Registration is data: one row per environment id.
ENV_SPECS: list[dict] = [
    {"id": "nasgen/OneShotNAS-v0", "entry_point": "nasgen.envs.oneshot:OneShotNASEnv"},
    {"id": "nasgen/TeacherArch-v0", "entry_point": "nasgen.envs.teacher:TeacherArchEnv"},
    {"id": "nasgen/SeqTarget-v0", "entry_point": "nasgen.envs.seq_target:SeqTargetEnv"},
    {"id": "nasgen/OneShotNASSeq-v0", "entry_point": "nasgen.envs.oneshot_seq:OneShotNASSeqEnv"},
    # Needs the optional extra: pip install "nasgen[bench]" (make raises ImportError without it).
    {"id": "nasgen/NASBenchGraph-v0", "entry_point": "nasgen.envs.nas_bench_graph:NASBenchGraphEnv"},
    # A NAS-Bench-1D table (nasgen bench build); table= a shipped name or a path.
    {"id": "nasgen/Tabular-v0", "entry_point": "nasgen.envs.tabular:TabularEnv"},
]

# gymnasium's PassiveEnvChecker marks its first reset as checked before running it, so a
# first reset that raises (an interrupted warm-up, a bad option) leaves it comparing every
# later step with data it never got: each step then raises TypeError, even after a good
# reset. Our envs pass check_env in the tests instead (tests/test_envs.py); a user can still
# ask for the passive checker with gym.make(..., disable_env_checker=False).
for _spec in ENV_SPECS:
    if _spec["id"] not in gym.registry:
        gym.register(**_spec, disable_env_checker=True)


def env_ids() -> list[str]:
    """The registered ``nasgen/...`` environment ids."""
    return [spec["id"] for spec in ENV_SPECS]


def env_class(env_id: str) -> type:
    """The class behind a registered environment id (KeyError listing the known ids)."""
    if env_id not in gym.registry:
        raise KeyError(f"unknown env {env_id!r}; choose from: {', '.join(env_ids())}")
    entry = gym.spec(env_id).entry_point
    return gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry


def env_parameters(env_id: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments env ``env_id`` accepts, with their defaults: the fields of its
    ``config_class`` where it has one, else the parameters of its ``__init__``."""
    cls = env_class(env_id)
    config = getattr(cls, "config_class", None)
    function = config if config is not None else cls.__init__
    return {name: p for name, p in inspect.signature(function).parameters.items() if name != "self"}


def env_datasets(env_id: str) -> Optional[list[str]]:
    """The dataset names env ``env_id`` accepts, or None when it takes no ``dataset``."""
    if "dataset" not in env_parameters(env_id):
        return None
    names = getattr(env_class(env_id), "dataset_names", None)
    return list(names()) if names is not None else None


def differentiable(env_id: str) -> bool:
    """True when gradient controllers can drive the env's model (``step(env.unwrapped)``)."""
    return class_is_differentiable(env_class(env_id))


def credit_modes(env_id: str) -> tuple[str, ...]:
    """The values ``credit=`` of env ``env_id`` accepts besides None (empty: no credit)."""
    if "credit" not in env_parameters(env_id):
        return ()
    return tuple(getattr(env_class(env_id), "credit_modes", ()))


__all__ = ["ArchitectureEnv", "OneShotNASEnv", "TeacherArchEnv", "TeacherModel", "ENV_SPECS", "credit_modes",
           "differentiable", "env_class", "env_datasets", "env_ids", "env_parameters"]
