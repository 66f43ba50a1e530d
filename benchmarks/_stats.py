"""The paired significance tests of the benchmark scripts: ``nasgen.stats``, re-exported
under the name the scripts import (``import _stats``)."""

from nasgen.stats import EXACT_MAX, paired_bootstrap_ci, wilcoxon_signed_rank
from nasgen.stats import average_ranks as _average_ranks

__all__ = ["EXACT_MAX", "paired_bootstrap_ci", "wilcoxon_signed_rank", "_average_ranks"]
