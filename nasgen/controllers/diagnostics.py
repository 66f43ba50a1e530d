"""Collapse diagnostics for autoregressive generators (the ``rnn`` controller, ``nasgen toy``).

The failure this module exists for (docs/design.md section 7, the progress report's section 4.2):
an RNN that feeds its own output back as its next input ends up emitting 0 (the zero op)
or one fixed sequence, whatever the reward says. The numbers that tell the causes apart:

- per-step output distribution and entropy (entropy collapse: the policy stopped exploring);
- share of the zero token / zero op, and distinct sequences per 100 samples;
- ``||h_t - h_{t-1}||`` and the share of saturated hidden units (``|tanh(c_t)| > 0.99``),
  plus the share of output logits pinned at the ``c * tanh`` clipping bound;
- *state memory*: how far the carried state moves ``h_t`` away from what the same input
  gives from the initial state (exactly 0 when ``(h, c)`` is not carried);
- gradient norms reaching the recurrent weights (``weight_hh``), the token embedding (the
  feedback path's parameters), and *through* the fed-back input into the previous step's
  output (exactly 0 when the feedback is argmaxed, sampled or detached);
- teacher-forced vs free-running accuracy where a target is known (the toy).

:func:`detect_collapse` turns a :class:`Diagnostics` into a :class:`Verdict`:
``"collapsed to zero"``, ``"collapsed to a constant sequence"`` or ``"healthy"``, with the
likely causes and the remedy flags to try. :func:`format_report` prints both.

Nothing here draws random numbers; callers pass the samples and traces they recorded.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch

VERDICTS = ("healthy", "collapsed to zero", "collapsed to a constant sequence")

# Causes the detector can name, each with the remedy to suggest (toy flag; controller kwarg).
CAUSES: dict[str, str] = {
    "no carried state": "--carry-state (pass (h, c) from each step to the next)",
    "no gradient through the feedback": "--feedback soft (Gumbel straight-through) or --feedback sample "
                                        "(REINFORCE), or --feedback teacher (teacher forcing, then scheduled sampling)",
    "saturation": "lower the learning rate; clip logits with c*tanh(l/T) (rnn: tanh_constant=2.5, "
                  "temperature=5.0)",
    "entropy collapse": "raise the entropy bonus (toy: --entropy-weight; rnn: entropy_weight=...) "
                        "or use --feedback sample with a baseline",
}

# The same causes as remedies for the ``rnn`` controller under ``nasgen search`` (its state is
# always carried and its feedback is sampled, so only these two can apply there).
CONTROLLER_REMEDIES: dict[str, str] = {
    "saturation": "--controller-kwargs lr=1e-3 tanh_constant=2.5 temperature=5.0",
    "entropy collapse": "--controller-kwargs entropy_weight=0.01",
}


@dataclass
class Thresholds:
    """Where the collapse detector draws its lines (all documented defaults).

    Attributes:
        zero_share: a run is *collapsed to zero* when at least this share of all emitted
            tokens is the zero token (uniform sampling over J choices gives 1/J) ...
        zero_excess: ... and, when a target is known, that share exceeds the target's own
            zero share by at least this much (an all-zero target is not a collapse).
        constant_distinct: *constant sequence* needs at most this many distinct sequences
            per 100 samples ...
        constant_mode_share: ... and the most frequent sequence to be at least this share.
        entropy_ratio: mean per-step entropy over its maximum (log of the number of valid
            choices) below this is *entropy collapse*.
        saturated: share of saturated hidden units (or of logits at the clipping bound) from
            which *saturation* is named.
        state_memory: relative state memory below this means the state is not carried.
        feedback_grad: gradient norm through the fed-back input below this counts as none.
        reward_tolerance: a constant sequence whose mean reward is within this (relative to
            the reward spread seen) of the best reward seen is *converged*, not collapsed.
        min_samples: with fewer sequences than this the detector does not judge (``healthy``,
            "too few samples").
        greedy_entropy_ratio: when the samples are greedy decodes of a stochastic policy
            (``detect_collapse(greedy_decodes=True)``), a collapse is called only once the
            policy's entropy ratio is below this: a policy that still spreads its probability
            has not collapsed, whatever its greedy decode shows.
    """

    zero_share: float = 0.7
    zero_excess: float = 0.2
    constant_distinct: float = 2.0
    constant_mode_share: float = 0.95
    entropy_ratio: float = 0.1
    saturated: float = 0.5
    state_memory: float = 1e-3
    feedback_grad: float = 1e-12
    reward_tolerance: float = 0.05
    greedy_entropy_ratio: float = 0.5
    min_samples: int = 20


@dataclass
class Diagnostics:
    """What the detector looks at (one snapshot).

    Attributes:
        step_distribution: ``[T, K]`` mean predicted probability of each token per step.
        step_entropy: ``[T]`` mean entropy (nats) of the predicted distribution per step.
        max_entropy: ``[T]`` log of the number of valid choices per step.
        step_token_share: ``[T, K]`` share of each token among the emitted samples per step.
        zero_share: share of the zero token over all steps and samples.
        distinct_per_100: distinct sequences per 100 samples (scaled when fewer were given).
        n_samples: how many sequences the sample statistics come from.
        mode_sequence: the most frequent sequence, and ``mode_share`` its share.
        h_delta: ``[T]`` mean ``||h_t - h_{t-1}||`` (step 0 against the initial state).
        saturated_share: share of hidden units with ``|tanh(c_t)| > 0.99``.
        logit_saturation: share of logits at the ``c*tanh`` bound (``|tanh(l/T)| > 0.99``);
            nan when the logits are not clipped.
        state_memory: mean over steps >= 1 of ``||h_t - h~_t|| / ||h_t||``, where ``h~_t`` is
            the hidden state the same input gives from the initial state; 0 without carry.
        grad_norm_recurrent: gradient norm at the recurrent weights in the last update.
        grad_norm_embedding: gradient norm at the token embedding (feedback path) then.
        grad_through_feedback: gradient norm that flowed through the fed-back inputs into
            the previous steps' outputs (0 when the feedback is detached).
        teacher_forced_accuracy, free_running_accuracy: token accuracy against the target
            with the target fed back vs the model's own output fed back (toy only).
        target: the target sequence when there is one.
        extra: anything else worth printing (float values).
    """

    step_distribution: np.ndarray
    step_entropy: np.ndarray
    max_entropy: np.ndarray
    step_token_share: np.ndarray
    zero_share: float
    distinct_per_100: float
    n_samples: int
    mode_sequence: tuple[int, ...]
    mode_share: float
    h_delta: Optional[np.ndarray] = None
    saturated_share: float = float("nan")
    logit_saturation: float = float("nan")
    state_memory: Optional[float] = None
    grad_norm_recurrent: Optional[float] = None
    grad_norm_embedding: Optional[float] = None
    grad_through_feedback: Optional[float] = None
    teacher_forced_accuracy: Optional[float] = None
    free_running_accuracy: Optional[float] = None
    target: Optional[tuple[int, ...]] = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def mean_entropy(self) -> float:
        """Mean per-step entropy (nats)."""
        return float(np.mean(self.step_entropy))

    @property
    def entropy_ratio(self) -> float:
        """Mean per-step entropy over its maximum (1 = uniform, 0 = deterministic)."""
        top = np.maximum(self.max_entropy, 1e-12)
        valid = self.max_entropy > 0
        return float(np.mean(self.step_entropy[valid] / top[valid])) if valid.any() else 0.0

    def as_metrics(self, prefix: str = "diagnostics/") -> dict[str, float]:
        """Flat float metrics for a logger (TensorBoard tags start with ``prefix``)."""
        out = {
            "zero_share": self.zero_share,
            "distinct_per_100": self.distinct_per_100,
            "mode_share": self.mode_share,
            "entropy_mean": self.mean_entropy,
            "entropy_ratio": self.entropy_ratio,
            "saturated_share": self.saturated_share,
            "logit_saturation": self.logit_saturation,
        }
        if self.h_delta is not None:
            out["h_delta_mean"] = float(np.mean(self.h_delta))
        for name in ("state_memory", "grad_norm_recurrent", "grad_norm_embedding", "grad_through_feedback",
                     "teacher_forced_accuracy", "free_running_accuracy"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        out.update(self.extra)
        return {prefix + k: float(v) for k, v in out.items()}


@dataclass
class Verdict:
    """The detector's answer.

    Attributes:
        verdict: one of ``VERDICTS``.
        causes: likely causes (keys of ``CAUSES``), most likely first; empty when healthy.
        remedies: the remedy to try for each cause, same order.
        reasons: one line per rule that fired or was checked, with the numbers.
    """

    verdict: str
    causes: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return self.verdict != "healthy"

    def warning(self) -> str:
        """The one visible line to print on a collapse (empty when healthy)."""
        if not self.collapsed:
            return ""
        cause = self.causes[0] if self.causes else "unclear cause"
        remedy = self.remedies[0] if self.remedies else "see the diagnostics report"
        return f"WARNING: generator {self.verdict} (likely cause: {cause}; try: {remedy})"


# --- building blocks -------------------------------------------------------------------------------
def entropy(probs: np.ndarray | torch.Tensor, axis: int = -1) -> np.ndarray:
    """Entropy in nats along ``axis`` (0 log 0 = 0)."""
    p = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs, dtype=np.float64)
    p = p.astype(np.float64)
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=axis)


def distinct_per_100(samples: Sequence[Sequence[int]] | np.ndarray) -> float:
    """Distinct sequences among the last 100 samples (scaled to per 100 when fewer)."""
    rows = [tuple(int(v) for v in s) for s in list(samples)[-100:]]
    if not rows:
        return float("nan")
    return 100.0 * len(set(rows)) / len(rows)


def grad_norm(params: Iterable[torch.nn.Parameter] | torch.Tensor | None) -> float:
    """L2 norm of the gradients held by ``params`` (0 where a parameter has none)."""
    if params is None:
        return 0.0
    if isinstance(params, torch.Tensor):
        params = [params]
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.detach().double().pow(2).sum())
    return math.sqrt(total)


def sample_statistics(samples: np.ndarray | torch.Tensor | Sequence[Sequence[int]], n_tokens: int) -> dict[str, Any]:
    """The sample-only numbers of :class:`Diagnostics` for ``samples [N, T]``.

    Returns:
        A dict with ``step_token_share``, ``zero_share``, ``distinct_per_100``, ``n_samples``,
        ``mode_sequence`` and ``mode_share`` (assign them onto a :class:`Diagnostics`).
    """
    samples = np.asarray(_np(samples) if isinstance(samples, torch.Tensor) else samples, dtype=np.int64)
    if samples.ndim != 2:
        raise ValueError(f"samples must be [N, T], got shape {samples.shape}")
    n, steps = samples.shape
    share = np.zeros((steps, n_tokens))
    for t in range(steps):
        share[t] = np.bincount(samples[:, t], minlength=n_tokens)[:n_tokens] / max(n, 1)
    counts = Counter(tuple(int(v) for v in row) for row in samples)
    mode, mode_count = counts.most_common(1)[0] if counts else ((), 0)
    return {"step_token_share": share,
            "zero_share": float((samples == 0).mean()) if samples.size else float("nan"),
            "distinct_per_100": distinct_per_100(samples), "n_samples": int(n),
            "mode_sequence": tuple(mode), "mode_share": mode_count / max(n, 1)}


def compute_diagnostics(
    samples: np.ndarray | torch.Tensor,
    probs: np.ndarray | torch.Tensor,
    *,
    mask: Optional[np.ndarray] = None,
    hidden: Optional[torch.Tensor] = None,
    cell: Optional[torch.Tensor] = None,
    h_init: Optional[torch.Tensor] = None,
    h_reset: Optional[torch.Tensor] = None,
    raw_logits: Optional[torch.Tensor] = None,
    grad_norm_recurrent: Optional[float] = None,
    grad_norm_embedding: Optional[float] = None,
    grad_through_feedback: Optional[float] = None,
    teacher_forced_accuracy: Optional[float] = None,
    free_running_accuracy: Optional[float] = None,
    target: Optional[Sequence[int]] = None,
    extra: Optional[dict[str, float]] = None,
) -> Diagnostics:
    """Summarise one batch of generated sequences and their trace.

    Args:
        samples: ``[N, T]`` emitted tokens (the sequences the generator produced).
        probs: ``[N, T, K]`` predicted distributions along those sequences.
        mask: ``[T, K]`` bool, valid tokens per step (all valid when None).
        hidden: ``[N, T, H]`` hidden states ``h_t``; ``cell``: ``[N, T, H]`` cell states.
        h_init: ``[N, H]`` the state before step 0 (for ``||h_0 - h_init||``).
        h_reset: ``[N, T, H]`` hidden state each step's input gives from the initial state.
        raw_logits: ``[N, T, K]`` ``tanh(l/T)`` before scaling by ``c`` (clipped logits only).
        grad_norm_recurrent, grad_norm_embedding, grad_through_feedback: from the last update.
        teacher_forced_accuracy, free_running_accuracy: toy accuracies against ``target``.
        target: the target sequence when there is one.
        extra: further float values to carry along.

    Returns:
        A :class:`Diagnostics`.
    """
    samples = _np(samples).astype(np.int64)
    probs = _np(probs).astype(np.float64)
    if samples.ndim != 2 or probs.ndim != 3 or probs.shape[:2] != samples.shape:
        raise ValueError(f"samples must be [N, T] and probs [N, T, K]; got {samples.shape} and {probs.shape}")
    n, steps, k = probs.shape
    if mask is None:
        mask = np.ones((steps, k), dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    diag = Diagnostics(
        step_distribution=probs.mean(axis=0),
        step_entropy=entropy(probs).mean(axis=0),
        max_entropy=np.log(np.maximum(mask.sum(axis=1), 1)),
        **sample_statistics(samples, k),
        grad_norm_recurrent=grad_norm_recurrent,
        grad_norm_embedding=grad_norm_embedding,
        grad_through_feedback=grad_through_feedback,
        teacher_forced_accuracy=teacher_forced_accuracy,
        free_running_accuracy=free_running_accuracy,
        target=None if target is None else tuple(int(v) for v in target),
        extra=dict(extra or {}),
    )
    if hidden is not None:
        h = hidden.detach().double()
        prev = torch.cat([(h_init.detach().double() if h_init is not None else torch.zeros_like(h[:, 0]))[:, None],
                          h[:, :-1]], dim=1)
        diag.h_delta = (h - prev).norm(dim=-1).mean(dim=0).numpy()
    if cell is not None:
        diag.saturated_share = float((torch.tanh(cell.detach()).abs() > 0.99).double().mean())
    elif hidden is not None:
        diag.saturated_share = float((hidden.detach().abs() > 0.99).double().mean())
    if raw_logits is not None:
        diag.logit_saturation = float((raw_logits.detach().abs() > 0.99).double().mean())
    if hidden is not None and h_reset is not None and hidden.shape[1] > 1:
        h, r = hidden.detach().double()[:, 1:], h_reset.detach().double()[:, 1:]
        diag.state_memory = float(((h - r).norm(dim=-1) / (h.norm(dim=-1) + 1e-12)).mean())
    return diag


def detect_collapse(diag: Diagnostics, *, score_function: bool = False,
                    mode_reward: Optional[float] = None, best_reward: Optional[float] = None,
                    reward_spread: Optional[float] = None, greedy_decodes: bool = False,
                    thresholds: Optional[Thresholds] = None) -> Verdict:
    """Decide whether the generator collapsed, and why.

    Rules (see :class:`Thresholds` for the numbers):

    - Fewer than ``min_samples`` sequences: ``healthy`` (not judged).
    - A known target reproduced exactly by every sample is ``healthy`` (a constant sequence
      that *is* the target is success).
    - ``collapsed to zero``: the zero share reaches ``zero_share`` (and, with a target, exceeds
      the target's zero share by ``zero_excess``).
    - ``collapsed to a constant sequence``: at most ``constant_distinct`` distinct sequences
      per 100 and the mode has ``constant_mode_share``, and it is wrong: it is not the
      target, or (no target) its mean reward is below the best reward seen by more than
      ``reward_tolerance`` of the reward spread. Without a target or rewards a constant
      generator is reported ``healthy`` with a "converged" reason.
    - Causes are named only for a collapse: ``no carried state`` (state memory ~0),
      ``no gradient through the feedback`` (none measured, the state is carried and the
      update is not a score-function one), ``saturation``, ``entropy collapse``.

    Args:
        diag: the snapshot.
        score_function: True when the generator learns by REINFORCE, which needs no
            gradient through the feedback (so its absence is not a cause).
        mode_reward: mean reward of the most frequent sequence, where known.
        best_reward: best reward seen so far, where known.
        reward_spread: typical reward range (e.g. best minus mean); scales the tolerance.
        greedy_decodes: the samples are greedy decodes of a policy that is meant to sample
            (REINFORCE); then a collapse also needs a low entropy (``greedy_entropy_ratio``).
        thresholds: override the default :class:`Thresholds`.

    Returns:
        A :class:`Verdict`.
    """
    th = thresholds or Thresholds()
    reasons: list[str] = []
    target = diag.target
    target_zero = float(np.mean(np.asarray(target) == 0)) if target else None
    exact = target is not None and diag.mode_sequence == target and diag.mode_share >= 1.0 - 1e-12
    verdict = "healthy"
    if diag.n_samples < th.min_samples:
        return Verdict("healthy", reasons=[f"too few samples to judge ({diag.n_samples} < {th.min_samples})"])
    if exact:
        reasons.append(f"every sample equals the target {list(target)}")
    else:
        zero_line = f"zero share {diag.zero_share:.2f} (threshold {th.zero_share}"
        zero_line += f", target's {target_zero:.2f})" if target_zero is not None else ")"
        zero_hit = diag.zero_share >= th.zero_share and (
            target_zero is None or diag.zero_share >= target_zero + th.zero_excess)
        constant = diag.distinct_per_100 <= th.constant_distinct and diag.mode_share >= th.constant_mode_share
        const_line = (f"{diag.distinct_per_100:.0f} distinct per 100, mode {list(diag.mode_sequence)} "
                      f"at {diag.mode_share:.2f}")
        if zero_hit:
            verdict = "collapsed to zero"
            reasons.append(zero_line)
        elif constant:
            if target is not None:
                verdict = "collapsed to a constant sequence"
                reasons.append(const_line + f", not the target {list(target)}")
            elif mode_reward is not None and best_reward is not None:
                spread = abs(reward_spread) if reward_spread else max(abs(best_reward), 1e-12)
                if best_reward - mode_reward > th.reward_tolerance * spread:
                    verdict = "collapsed to a constant sequence"
                    reasons.append(const_line + f", its reward {mode_reward:.4g} below the best seen "
                                                f"{best_reward:.4g}")
                else:
                    reasons.append(const_line + " at the best reward seen: converged")
            else:
                reasons.append(const_line + " (no target or reward to judge it: converged)")
        else:
            reasons.append(zero_line + "; " + const_line)
    if verdict != "healthy" and greedy_decodes and diag.entropy_ratio >= th.greedy_entropy_ratio:
        reasons.append(f"but these are greedy decodes of a policy whose entropy is still "
                       f"{diag.entropy_ratio:.2f} of its maximum: not collapsed")
        verdict = "healthy"
    if verdict == "healthy":
        return Verdict("healthy", reasons=reasons)
    causes: list[str] = []
    stateless = diag.state_memory is not None and diag.state_memory < th.state_memory
    if stateless:
        causes.append("no carried state")
        line = f"state memory {diag.state_memory:.2g}: h_t is what the input alone gives"
        if diag.grad_norm_recurrent is not None:
            line += f"; gradient at the recurrent weights {diag.grad_norm_recurrent:.2g}"
        reasons.append(line)
    # Without carried state no feedback gradient can help (a memoryless map cannot emit the
    # target), and with it a detached feedback still learns per-step targets (nasgen toy
    # --feedback argmax --carry-state), so the missing feedback gradient is named only when
    # the state is carried and the update is not a score-function one.
    if (not stateless and not score_function and diag.grad_through_feedback is not None
            and diag.grad_through_feedback < th.feedback_grad):
        causes.append("no gradient through the feedback")
        reasons.append(f"gradient through the fed-back input {diag.grad_through_feedback:.2g}")
    sat = max(_finite(diag.saturated_share), _finite(diag.logit_saturation))
    if sat >= th.saturated:
        causes.append("saturation")
        reasons.append(f"saturated hidden units {diag.saturated_share:.2f}, logits at the clip bound "
                       f"{diag.logit_saturation:.2f}")
    if diag.entropy_ratio < th.entropy_ratio:
        causes.append("entropy collapse")
        reasons.append(f"entropy {diag.mean_entropy:.3f} nats = {diag.entropy_ratio:.3f} of its maximum")
    return Verdict(verdict, causes, [CAUSES[c] for c in causes], reasons)


def parameter_free_cells(space: Any, arch: Any) -> list[str]:
    """The cells of ``arch`` whose ops are all parameter-free: the collapse of DARTS-style
    searches onto skip connections and pooling (docs/design.md section 7), which leaves a
    cell that cannot learn a feature, whatever controller derived it.

    Args:
        space: the search space; only cell spaces (``parameter_free_share``) have cells.
        arch: the derived architecture.

    Returns:
        The cell types (``"normal"``, ``"reduce"``) with only parameter-free (or zero) ops;
        empty for a healthy architecture or a space without cells.
    """
    share = getattr(space, "parameter_free_share", None)
    if share is None:
        return []
    return [cell for cell, value in share(arch).items() if value >= 1.0]


def format_report(diag: Diagnostics, verdict: Verdict, token_names: Optional[Sequence[str]] = None,
                  max_steps: int = 32) -> str:
    """A plain-text report: per-step distribution and entropy, the numbers, the verdict.

    Args:
        diag: the snapshot.
        verdict: the detector's answer.
        token_names: names of the tokens (columns); ``0..K-1`` when None.
        max_steps: print at most this many steps (the rest are summarised).

    Returns:
        The report, several lines.
    """
    steps, k = diag.step_distribution.shape
    names = list(token_names) if token_names is not None else [str(i) for i in range(k)]
    wide = k > 4
    head = ("top emitted (share) / top predicted (p)" if wide else "emitted share / mean p, per token")
    lines = ["diagnostics", f"  step  entropy  p(token 0)  {head}"]
    for t in range(min(steps, max_steps)):
        share, dist = diag.step_token_share[t], diag.step_distribution[t]
        if wide:
            top_s = [j for j in np.argsort(-share, kind="stable")[:3] if share[j] > 0]
            top_p = np.argsort(-dist, kind="stable")[:3]
            text = (", ".join(f"{names[j]} {share[j]:.2f}" for j in top_s) + " / "
                    + ", ".join(f"{names[j]} {dist[j]:.2f}" for j in top_p))
        else:
            text = (" ".join(f"{names[j]}:{share[j]:.2f}" for j in range(k)) + "  /  "
                    + " ".join(f"{dist[j]:.3f}" for j in range(k)))
        lines.append(f"  {t:>4}  {diag.step_entropy[t]:.3f}    {dist[0]:.3f}      {text}")
    if steps > max_steps:
        lines.append(f"  ... {steps - max_steps} more steps")
    lines.append(f"  zero share {diag.zero_share:.3f}; distinct sequences per 100 samples "
                 f"{diag.distinct_per_100:.0f} (from {diag.n_samples}); most frequent "
                 f"{list(diag.mode_sequence)} at {diag.mode_share:.2f}")
    if diag.h_delta is not None:
        lines.append("  ||h_t - h_{t-1}|| per step: " + " ".join(f"{v:.3f}" for v in diag.h_delta[:max_steps]))
    lines.append(f"  saturated hidden units {_fmt(diag.saturated_share)}; logits at clip bound "
                 f"{_fmt(diag.logit_saturation)}; state memory {_fmt(diag.state_memory)}")
    lines.append(f"  grad norm: recurrent {_fmt(diag.grad_norm_recurrent)}, embedding (feedback path) "
                 f"{_fmt(diag.grad_norm_embedding)}, through the fed-back input {_fmt(diag.grad_through_feedback)}")
    if diag.teacher_forced_accuracy is not None or diag.free_running_accuracy is not None:
        lines.append(f"  accuracy: teacher-forced {_fmt(diag.teacher_forced_accuracy)}, free-running "
                     f"{_fmt(diag.free_running_accuracy)}")
    for key, value in diag.extra.items():
        lines.append(f"  {key}: {_fmt(value)}")
    lines.append(f"verdict: {verdict.verdict}")
    for reason in verdict.reasons:
        lines.append(f"  - {reason}")
    for cause, remedy in zip(verdict.causes, verdict.remedies):
        lines.append(f"  likely cause: {cause} -> try {remedy}")
    return "\n".join(lines)


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _finite(x: Optional[float]) -> float:
    return float(x) if x is not None and math.isfinite(x) else 0.0


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}"
