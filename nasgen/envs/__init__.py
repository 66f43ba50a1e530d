"""Gymnasium environments; importing this package registers the ``nasgen/...`` ids.

- ``nasgen/OneShotNAS-v0``: one step = one architecture, rewarded by the shared-weight supernet.
- ``nasgen/TeacherArch-v0``: the AdvantageNAS toy with a hidden optimal architecture.
- ``nasgen/OneShotNASSeq-v0``: OneShotNAS as an autoregressive episode, one decision per step.
- ``nasgen/SeqTarget-v0``: the report's RNN toy, one token per step against a target sequence.
- ``nasgen/NASBenchGraph-v0``: rewards from the NAS-Bench-Graph table (extra ``bench``).
- ``nasgen/Tabular-v0``: rewards from a NAS-Bench-1D table of ``nasgen.nb1d`` (``table=``).
"""

import gymnasium as gym

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


__all__ = ["ArchitectureEnv", "OneShotNASEnv", "TeacherArchEnv", "TeacherModel", "ENV_SPECS", "env_ids"]
