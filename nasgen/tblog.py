"""TensorBoard records a run writes once: its hyper-parameters as a table and in the HParams tab."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"env_kwargs": {"C": 4}}`` -> ``{"env_kwargs.C": 4}``; values the HParams tab cannot
    hold (None, lists, ...) become their text.

    Args:
        config: a nested dict of settings.
        prefix: prepended to every key (used by the recursion).

    Returns:
        A flat dict of bool, int, float and str values.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def hyperparameter_table(config: Mapping[str, Any]) -> str:
    """The markdown table of ``config`` written as the ``hyperparameters`` text."""
    rows = "\n".join(f"|{key}|{value}|" for key, value in config.items())
    return f"|param|value|\n|-|-|\n{rows}"


def write_hparams(logger: Any, config: Mapping[str, Any], metrics: Mapping[str, Optional[float]],
                  step: int, experiment: bool = True) -> None:
    """Fill TensorBoard's HParams tab for the run that ``logger`` writes.

    ``SummaryWriter.add_hparams`` would put them in a new sub-run (a folder of its own); these
    summaries go into the logger's own event file instead, so the tab shows one row per run
    directory. The metrics are logged as scalars under their tags (the tab's metric columns
    read those scalars); non-finite or missing ones are left out.

    Args:
        logger: a ``SummaryWriter`` (anything without a ``file_writer`` is skipped).
        config: the run's settings (nested dicts are flattened).
        metrics: final metrics by tag, e.g. ``{"hparams/score": -0.2}``.
        step: the global step of the metric scalars.
        experiment: also write the experiment summary that names the tab's columns. A run
            inside another run's folder (a retraining in ``RUN_DIR/retrain``) leaves it out, so
            the tab keeps the search's columns.
    """
    file_writer = getattr(logger, "file_writer", None)
    if file_writer is None:
        return
    from torch.utils.tensorboard.summary import hparams

    finite = {tag: float(value) for tag, value in metrics.items()
              if isinstance(value, (int, float)) and math.isfinite(value)}
    experiment_summary, start, end = hparams(flatten(config), finite)
    for summary in ((experiment_summary,) if experiment else ()) + (start, end):
        file_writer.add_summary(summary, step)
    for tag, value in finite.items():
        logger.add_scalar(tag, value, step)
