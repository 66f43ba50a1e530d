"""Toy sequence tasks: the progress report's RNN experiments (section 4), reproduced and fixed.

- ``task="map"`` (report 4.1): read an input sequence (``[1,0,1,0]``), emit the target
  (``[1,1,0,0]``) one token per step; supervised per-step cross-entropy. It learns.
- ``task="generate"`` (report 4.2): read only a random ``z`` at step 0, then feed each
  emitted token back as the next input and emit the target. How the token is fed back and
  how the generator is trained is ``feedback``:

  ``argmax``   the report's setup: the thresholded (argmax) previous output, detached, is fed
               back; trained like 4.1, with per-step cross-entropy on the free-running sequence.
  ``sample``   REINFORCE: tokens sampled from the policy and fed back; reward
               ``-(number of wrong tokens)`` (or per token), EMA baseline, entropy bonus.
  ``soft``     Gumbel straight-through: the hard one-hot goes forward, the gradient flows
               back through the soft sample into the previous step (per-step cross-entropy).
  ``teacher``  teacher forcing, then scheduled sampling: the target token is fed back with a
               probability that decays linearly from 1 to 0 over ``teacher_fraction`` of the
               updates; afterwards the model's own argmax is fed back.

  ``carry_state`` passes ``(h, c)`` from step to step; ``False`` restarts every step from the
  initial state, so each step sees only its input (the fed-back token).

What each mode does with and without carried state is measured on the results pages of
the docs ("Toy tasks").

All modes use the same :class:`nasgen.controllers.rnn.LSTMGenerator` as the ``rnn``
controller (token embedding for the feedback, explicit state), with unclipped logits.
``run_toy`` trains, evaluates free-running (greedy) generation on 100 fixed ``z`` and
returns a :class:`ToyResult` with the diagnostics and the collapse verdict
(:mod:`nasgen.controllers.diagnostics`); ``format_report`` prints it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasgen import checks
from nasgen.controllers.diagnostics import (Diagnostics, Verdict, compute_diagnostics, detect_collapse,
                                            distinct_per_100, grad_norm)
from nasgen.controllers.diagnostics import format_report as format_diagnostics
from nasgen.controllers.rnn import LSTMGenerator, build_module

TASKS = ("map", "generate")
DEFAULT_INPUT = (1, 0, 1, 0)
#: Bounds of a toy run: far beyond the report's sequences, small enough to fit in memory.
MAX_LENGTH, MAX_TOKENS, MAX_WIDTH, MAX_BATCH, MAX_LR = 10_000, 100_000, 16_384, 1_000_000, 1e3
FEEDBACK_MODES = ("argmax", "sample", "soft", "teacher")
REWARDS = ("sequence", "per_token")


@dataclass
class ToyConfig:
    """Configuration of one toy run (``nasgen toy``)."""

    task: str = field(default="generate", metadata=checks.field(checks.one_of(*TASKS)))
    """``"map"`` (input sequence -> target, report 4.1) or ``"generate"`` (z -> target with the
    output fed back, report 4.2)."""
    feedback: str = field(default="argmax", metadata=checks.field(checks.one_of(*FEEDBACK_MODES)))
    """How the emitted token is fed back and trained in ``generate``: ``argmax`` (the report's
    setup), ``sample`` (REINFORCE), ``soft`` (Gumbel straight-through) or ``teacher`` (teacher
    forcing, then scheduled sampling). Ignored by ``map``."""
    carry_state: bool = True
    """Pass ``(h, c)`` from one step to the next; False restarts every step from the initial
    state (the generator then sees only the fed-back token)."""
    input: Optional[tuple[int, ...]] = None
    """Input sequence of the ``map`` task, as long as ``target`` (default 1,0,1,0)."""
    target: tuple[int, ...] = (1, 1, 0, 0)
    """The sequence to emit."""
    n_tokens: Optional[int] = field(default=None, metadata=checks.field(checks.positive_int))
    """Vocabulary size; default ``max(input + target) + 1`` and at least 2."""
    steps: int = field(default=300, metadata=checks.field(checks.positive_int))
    """Parameter updates (one batch each)."""
    batch_size: int = field(default=32, metadata=checks.field(checks.positive_int))
    """Sequences per update (``z`` draws, or samples for ``sample``)."""
    hidden_size: int = field(default=32, metadata=checks.field(checks.positive_int))
    """LSTM width."""
    z_dim: int = field(default=8, metadata=checks.field(checks.positive_int))
    """Size of the random ``z`` read at step 0 of ``generate`` (``z ~ N(0, I)``)."""
    lr: float = field(default=1e-2, metadata=checks.field(checks.positive_float))
    """Adam learning rate."""
    entropy_weight: float = field(default=0.1, metadata=checks.field(checks.non_negative_float))
    """Entropy bonus of ``sample`` (per step, summed). 0.01 is enough for 4 tokens but lets
    the 8-token target entropy-collapse onto zeros; 0.1 learns it in 4 of 5 seeds."""
    baseline_decay: float = field(default=0.9, metadata=checks.field(checks.non_negative_float))
    """EMA decay of the reward baseline of ``sample``."""
    reward: str = field(default="sequence", metadata=checks.field(checks.one_of(*REWARDS)))
    """``sample`` reward: ``sequence`` (``-(wrong tokens)`` at the end, credited to every
    step) or ``per_token`` (``-1`` per wrong token, each step credited with the reward to go,
    per-step baselines)."""
    gumbel_tau: float = field(default=1.0, metadata=checks.field(checks.positive_float))
    """Temperature of the Gumbel-softmax in ``soft``."""
    tanh_constant: Optional[float] = field(default=None, metadata=checks.field(checks.positive_float))
    """Clip the logits to ``c * tanh(l / temperature)`` (ENAS: c = 2.5); None: unclipped."""
    temperature: float = field(default=1.0, metadata=checks.field(checks.positive_float))
    """``T`` dividing the logits (before the tanh when clipping)."""
    teacher_fraction: float = field(default=0.5, metadata=checks.field(checks.positive_float))
    """Share of the updates over which ``teacher`` decays the teacher-forcing probability
    from 1 to 0 (scheduled sampling); the rest runs free."""
    eval_every: int = field(default=10, metadata=checks.field(checks.positive_int))
    """Evaluate free-running generation every this many updates (sets ``learned_at``)."""
    eval_samples: int = field(default=100, metadata=checks.field(checks.positive_int))
    """``z`` draws (fixed) for evaluation and the diagnostics."""
    stop_when_learned: bool = False
    """Stop at the first evaluation where every free-running sequence equals the target."""
    seed: int = field(default=0, metadata=checks.field(checks.seed))
    """Seeds the parameters, the ``z`` draws, sampling and Gumbel noise (torch generators)."""

    def __post_init__(self) -> None:
        checks.check_fields(self)
        if self.input is not None:
            self.input = tuple(int(v) for v in self.input)
        self.target = tuple(int(v) for v in self.target)
        if not self.target or min(self.target) < 0 or len(self.target) > MAX_LENGTH:
            raise ValueError(f"target must be 1 to {MAX_LENGTH} non-negative tokens, got {checks.short(list(self.target))}")
        if self.input is not None and (len(self.input) != len(self.target) or min(self.input, default=0) < 0):
            raise ValueError(f"input must be non-negative tokens as long as the target; got input "
                             f"{checks.short(list(self.input))} and target {checks.short(list(self.target))}")
        if self.input is None:
            self.input = DEFAULT_INPUT if self.task == "generate" or len(self.target) == len(DEFAULT_INPUT) else None
            if self.input is None:
                raise ValueError(f"map needs an input as long as the target ({len(self.target)} tokens); give --input")
        needed = max(self.target + (self.input if self.task == "map" else ())) + 1
        if self.n_tokens is None:
            self.n_tokens = max(2, needed)
        elif self.n_tokens < needed:
            raise ValueError(f"n_tokens={self.n_tokens} but the sequences use token {needed - 1}")
        for name, limit in (("n_tokens", MAX_TOKENS), ("hidden_size", MAX_WIDTH), ("z_dim", MAX_WIDTH),
                            ("batch_size", MAX_BATCH), ("eval_samples", MAX_BATCH)):
            if getattr(self, name) > limit:
                raise ValueError(f"{name}={getattr(self, name)} is more than this toy allows ({limit})")
        if self.lr > MAX_LR:
            raise ValueError(f"lr={self.lr:g} is beyond any step Adam takes usefully here (at most {MAX_LR:g})")
        if not 0 <= self.baseline_decay < 1 or not 0 < self.teacher_fraction <= 1:
            raise ValueError("need 0 <= baseline_decay < 1 and 0 < teacher_fraction <= 1")


#: The report's setup (section 4.2): the argmax output fed back, trained with per-step
#: cross-entropy, and the state not carried, which is what makes it fail (module docstring).
REPORT_SETUP = dict(task="generate", feedback="argmax", carry_state=False)


@dataclass
class ToyResult:
    """What ``run_toy`` returns.

    Attributes:
        config: the configuration run.
        updates: updates done.
        learned_at: first evaluated update at which every free-running sequence equalled the
            target (None if never).
        learned: whether the final free-running generation equals the target for every z.
        final_loss: training loss of the last update (mean per-step cross-entropy, or the
            REINFORCE surrogate for ``sample``).
        outputs: ``[T]`` most frequent free-running (greedy) token per step at the end.
        output_probs: ``[T, K]`` mean predicted distribution per step along those sequences.
        exact_share: share of the evaluation ``z`` whose free-running sequence is the target.
        free_running_accuracy: token accuracy of free-running generation.
        teacher_forced_accuracy: token accuracy with the target fed back (``generate``).
        diagnostics: the :class:`Diagnostics` at the end.
        verdict: the collapse detector's :class:`Verdict`.
        history: one dict per evaluation (update, loss, exact_share, accuracy, zero_share, ...).
        seconds: wall time.
    """

    config: ToyConfig
    updates: int
    learned_at: Optional[int]
    learned: bool
    final_loss: float
    outputs: list[int]
    output_probs: np.ndarray
    exact_share: float
    free_running_accuracy: float
    teacher_forced_accuracy: Optional[float]
    diagnostics: Diagnostics
    verdict: Verdict
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


class _ToyModel(nn.Module):
    """The generator plus the projection of ``z`` to the step-0 input."""

    def __init__(self, config: ToyConfig, generator: torch.Generator):
        super().__init__()
        self.gen = LSTMGenerator(config.n_tokens, config.hidden_size, tanh_constant=config.tanh_constant,
                                 temperature=config.temperature,
                                 init_range=None, generator=generator)
        self.z_proj = build_module(nn.Linear, config.z_dim, config.hidden_size)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(config.z_dim)
            for p in self.z_proj.parameters():
                p.uniform_(-bound, bound, generator=generator)


class _Runner:
    """Rollouts, losses and evaluation for one configuration (internal)."""

    def __init__(self, config: ToyConfig):
        self.cfg = config
        seed = int(config.seed)
        self.model = _ToyModel(config, torch.Generator().manual_seed(seed))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.train_gen = torch.Generator().manual_seed(seed + 1)   # z draws, sampling, Gumbel, coin flips
        eval_gen = torch.Generator().manual_seed(seed + 2)
        self.steps = len(config.target)
        self.target = torch.tensor(config.target, dtype=torch.long)
        self.input = torch.tensor(config.input, dtype=torch.long) if config.task == "map" else None
        self.eval_z = torch.randn(config.eval_samples, config.z_dim, generator=eval_gen)
        self.sample_gen_seed = seed + 3
        self.baseline: Optional[torch.Tensor] = None
        self.last_grads: dict[str, Optional[float]] = {}

    # --- one pass -----------------------------------------------------------------------------
    def rollout(self, batch: int, mode: str, z: Optional[torch.Tensor] = None, teacher_p: float = 0.0,
                generator: Optional[torch.Generator] = None, trace: bool = False) -> dict[str, Any]:
        """Run the generator for ``T`` steps.

        ``mode``: ``map`` (read the input sequence), ``argmax``, ``sample``, ``soft``,
        ``teacher`` (feed the target with probability ``teacher_p``) or ``forced`` (always feed
        the target: teacher-forced evaluation).
        """
        gen, cfg = self.model.gen, self.cfg
        init = gen.initial_state(batch)
        state = init
        if mode == "map":
            x = gen.embed(self.input[0].expand(batch))
        else:
            x = self.model.z_proj(z)
        logits_all, tokens, fed_back = [], [], []
        rec: dict[str, list] = {"hidden": [], "cell": [], "h_reset": []}
        for t in range(self.steps):
            h, c = gen.cell(x, state if cfg.carry_state else init)
            logits = gen.logits(h)[0]
            logits_all.append(logits)
            if trace:
                rec["hidden"].append(h)
                rec["cell"].append(c)
                with torch.no_grad():
                    rec["h_reset"].append(gen.cell(x, init)[0])
            state = (h, c)
            if mode == "sample":
                token = torch.multinomial(F.softmax(logits, -1), 1, generator=generator)[:, 0]
                feed = F.one_hot(token, cfg.n_tokens).float()
            elif mode == "soft":
                u = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
                y_soft = F.softmax((logits - torch.log(-torch.log(u))) / cfg.gumbel_tau, dim=-1)
                token = y_soft.argmax(-1)
                y_hard = F.one_hot(token, cfg.n_tokens).float()
                feed = y_hard - y_soft.detach() + y_soft          # straight-through
                feed.retain_grad()
            else:
                token = logits.argmax(-1)                            # thresholded, no gradient
                fed = token
                if mode == "teacher" and teacher_p > 0:
                    coin = torch.rand(batch, generator=generator) < teacher_p
                    fed = torch.where(coin, self.target[t].expand(batch), token)
                elif mode == "forced":
                    fed = self.target[t].expand(batch)
                feed = F.one_hot(fed, cfg.n_tokens).float()
            tokens.append(token)
            fed_back.append(feed)
            if t + 1 < self.steps:
                if mode == "map":
                    x = gen.embed(self.input[t + 1].expand(batch))
                else:
                    x = feed @ gen.embed.weight                       # embed the fed-back token
        out = {"logits": torch.stack(logits_all, 1), "tokens": torch.stack(tokens, 1), "feed": fed_back}
        if trace:
            out.update({k: torch.stack(v, 1) for k, v in rec.items()})
            out["h_init"] = init[0]
        return out

    # --- training -----------------------------------------------------------------------------
    def update(self, k: int) -> float:
        cfg = self.cfg
        batch = cfg.batch_size
        mode = "map" if cfg.task == "map" else cfg.feedback
        z = None if mode == "map" else torch.randn(batch, cfg.z_dim, generator=self.train_gen)
        teacher_p = max(0.0, 1.0 - k / max(1.0, cfg.teacher_fraction * cfg.steps)) if mode == "teacher" else 0.0
        out = self.rollout(batch, mode, z, teacher_p, self.train_gen)
        logits, tokens = out["logits"], out["tokens"]
        target = self.target.expand(batch, -1)
        if mode == "sample":
            logp_all = F.log_softmax(logits, -1)
            logp = logp_all.gather(-1, tokens[..., None])[..., 0]                 # [B, T]
            ent = -(logp_all.exp() * logp_all).sum(-1)                           # [B, T]
            wrong = (tokens != target).float()
            if cfg.reward == "sequence":
                ret = -wrong.sum(1, keepdim=True).expand(-1, self.steps)         # same return every step
            else:
                ret = -wrong.flip(1).cumsum(1).flip(1)                           # reward to go
            mean_ret = ret.mean(0)
            if self.baseline is None:
                self.baseline = mean_ret.clone()
            adv = ret - self.baseline
            self.baseline = cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * mean_ret
            loss = -(adv * logp).sum(1).mean() - cfg.entropy_weight * ent.sum(1).mean()
        else:
            loss = F.cross_entropy(logits.reshape(-1, cfg.n_tokens), target.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        through = 0.0
        for feed in out["feed"][:-1]:
            if feed.grad is not None:
                through += float(feed.grad.double().pow(2).sum())
        self.last_grads = {"recurrent": grad_norm(self.model.gen.cell.weight_hh),
                           "embedding": grad_norm(self.model.gen.embed.weight),
                           "through": None if mode == "map" else math.sqrt(through)}
        self.optimizer.step()
        return float(loss.detach())

    # --- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, trace: bool = False) -> dict[str, Any]:
        cfg, n = self.cfg, self.cfg.eval_samples
        if cfg.task == "map":
            out = self.rollout(1, "map", trace=trace)
            out = {k: (v.expand(n, *v.shape[1:]) if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
            forced_acc = None
        else:
            out = self.rollout(n, "argmax", self.eval_z, trace=trace)
            forced = self.rollout(n, "forced", self.eval_z)
            forced_acc = float((forced["tokens"] == self.target).float().mean())
        tokens = out["tokens"]
        match = (tokens == self.target).all(1)
        return {"out": out, "tokens": tokens, "exact_share": float(match.float().mean()),
                "accuracy": float((tokens == self.target).float().mean()), "forced_accuracy": forced_acc,
                "zero_share": float((tokens == 0).float().mean())}

    @torch.no_grad()
    def sampled_distinct(self) -> float:
        """Distinct sequences per 100 sampled from the policy (sampling feedback)."""
        if self.cfg.task == "map":
            return float("nan")
        gen = torch.Generator().manual_seed(self.sample_gen_seed)
        out = self.rollout(self.cfg.eval_samples, "sample", self.eval_z, generator=gen)
        return distinct_per_100(out["tokens"].numpy())


def run_toy(config: ToyConfig, logger: Optional[Any] = None, progress: bool = False) -> ToyResult:
    """Train and evaluate one toy configuration.

    Args:
        config: what to run.
        logger: optional sink for the evaluation metrics: a callable ``logger(step, metrics)``
            or an object with ``add_scalar(tag, value, step)`` (a TensorBoard ``SummaryWriter``);
            tags are prefixed ``toy/``.
        progress: print one line per evaluation.

    Returns:
        A :class:`ToyResult` (the per-step outputs, the accuracies, the diagnostics and the
        collapse verdict).
    """
    started = time.perf_counter()
    runner = _Runner(config)
    history: list[dict[str, float]] = []
    learned_at: Optional[int] = None
    loss = float("nan")
    updates = 0
    for k in range(config.steps):
        loss = runner.update(k)
        updates = k + 1
        if updates % config.eval_every == 0 or updates == config.steps:
            ev = runner.evaluate()
            row = {"update": float(updates), "loss": loss, "exact_share": ev["exact_share"],
                   "accuracy": ev["accuracy"], "zero_share": ev["zero_share"]}
            if ev["forced_accuracy"] is not None:
                row["teacher_forced_accuracy"] = ev["forced_accuracy"]
            history.append(row)
            _log(logger, updates, row)
            if progress:
                print(f"update {updates:>5}  loss {loss:.4f}  free-running exact {ev['exact_share']:.2f}  "
                      f"accuracy {ev['accuracy']:.2f}  zero share {ev['zero_share']:.2f}", flush=True)
            if learned_at is None and ev["exact_share"] == 1.0:
                learned_at = updates
                if config.stop_when_learned:
                    break
    ev = runner.evaluate(trace=True)
    out = ev["out"]
    probs = F.softmax(out["logits"], -1)
    diag = compute_diagnostics(
        ev["tokens"], probs, hidden=out["hidden"], cell=out["cell"], h_init=out["h_init"], h_reset=out["h_reset"],
        grad_norm_recurrent=runner.last_grads.get("recurrent"),
        grad_norm_embedding=runner.last_grads.get("embedding"),
        grad_through_feedback=runner.last_grads.get("through"),
        teacher_forced_accuracy=ev["forced_accuracy"], free_running_accuracy=ev["accuracy"],
        target=config.target,
        extra={} if config.task == "map" else {"sampled_distinct_per_100": runner.sampled_distinct()})
    sampling = config.task == "generate" and config.feedback == "sample"
    verdict = detect_collapse(diag, score_function=sampling, greedy_decodes=sampling)
    outputs = [int(torch.mode(ev["tokens"][:, t]).values) for t in range(ev["tokens"].shape[1])]
    return ToyResult(config=config, updates=updates, learned_at=learned_at, learned=ev["exact_share"] == 1.0,
                     final_loss=loss, outputs=outputs, output_probs=probs.mean(0).numpy(),
                     exact_share=ev["exact_share"], free_running_accuracy=ev["accuracy"],
                     teacher_forced_accuracy=ev["forced_accuracy"], diagnostics=diag, verdict=verdict,
                     history=history, seconds=time.perf_counter() - started)


def format_report(result: ToyResult) -> str:
    """The printable report of a toy run: setup, per-step outputs, diagnostics, verdict.

    Args:
        result: what ``run_toy`` returned.

    Returns:
        Several lines of text.
    """
    cfg = result.config
    setup = (f"task {cfg.task}" + ("" if cfg.task == "map" else f", feedback {cfg.feedback}")
             + f", carry state {'on' if cfg.carry_state else 'off'}, seed {cfg.seed}")
    lines = [f"nasgen toy: {setup}"]
    if cfg.task == "map":
        lines.append(f"  input  {list(cfg.input)}")
    else:
        lines.append(f"  input  z ~ N(0, I_{cfg.z_dim}), then the previous output")
    lines.append(f"  target {list(cfg.target)}")
    learned = f"learned at update {result.learned_at}" if result.learned_at is not None else "never learned"
    lines.append(f"  {result.updates} updates in {result.seconds:.1f} s; final loss {result.final_loss:.4f}; {learned}")
    lines.append("per-step outputs (free-running, greedy, over "
                 f"{cfg.eval_samples if cfg.task == 'generate' else 1} z):")
    lines.append("  step  target  output  p(token) mean")
    for t, (want, got) in enumerate(zip(cfg.target, result.outputs)):
        dist = " ".join(f"{p:.3f}" for p in result.output_probs[t])
        mark = "" if want == got else "  <- wrong"
        lines.append(f"  {t:>4}  {want:>6}  {got:>6}  {dist}{mark}")
    lines.append(f"  exact sequences {result.exact_share:.2f}; token accuracy free-running "
                 f"{result.free_running_accuracy:.2f}"
                 + ("" if result.teacher_forced_accuracy is None
                    else f", teacher-forced {result.teacher_forced_accuracy:.2f}"))
    if len(result.history) >= 2:
        tail = result.history[len(result.history) // 2:]
        lines.append(f"  second half of training: mean zero share {np.mean([h['zero_share'] for h in tail]):.2f}, "
                     f"exact at {sum(h['exact_share'] == 1.0 for h in tail)}/{len(tail)} evaluations")
    lines.append(format_diagnostics(result.diagnostics, result.verdict))
    if result.verdict.collapsed:
        lines.append(result.verdict.warning())
    return "\n".join(lines)


def _log(logger: Any, step: int, metrics: dict[str, float]) -> None:
    if logger is None:
        return
    if hasattr(logger, "add_scalar"):
        for key, value in metrics.items():
            logger.add_scalar(f"toy/{key}", value, step)
    else:
        logger(step, {f"toy/{k}": v for k, v in metrics.items()})
