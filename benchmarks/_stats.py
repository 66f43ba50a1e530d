"""The paired significance tests of the benchmark scripts: ``nasgen.stats``, re-exported
under the name the scripts import (``import _stats``)."""

from nasgen.stats import EXACT_MAX, _average_ranks, paired_bootstrap_ci, wilcoxon_signed_rank

__all__ = ["EXACT_MAX", "paired_bootstrap_ci", "wilcoxon_signed_rank", "_average_ranks"]
