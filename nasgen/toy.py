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

What it shows (measured, 10 seeds each, evaluation every 10 updates; ``learned`` = every
free-running greedy sequence equals the target):

- With ``(h, c)`` carried, every mode learns. Updates to learn, median / max:
  ``[1,1,0,0]`` (300-update runs): argmax 10 / 20, teacher 10 / 20, soft 20 / 20,
  sample 20 / 30, 10 of 10 seeds each. ``[1,1,0,0,1,0,1,0]`` (400-update runs): argmax
  30 / 40, soft 30 / 30, teacher 20 / 30, 10 of 10 each; sample reached it in 9 of 10 seeds
  (median 110, max 280) and 8 of 10 were still exact at the end, with the default entropy
  bonus 0.1 (with 0.01 it entropy-collapses onto zeros after the first four tokens).
  Detaching the argmax feedback is therefore *not* what breaks the report's setup: with
  per-step targets no gradient needs to pass through the fed-back token.
- Without carried state nothing learns (0 of 10 in every mode): each step then sees only the
  fed-back token, and ``[1,1,0,0]`` needs the token 1 to be followed once by 1 and once by 0,
  which no memoryless map can do. The per-step loss fits the transition frequencies instead:
  ``0 -> 0`` is learned with certainty (0 is absorbing) while ``p(1 | 1)`` is driven onto the
  0.5 threshold. With argmax feedback the generator flips between ``[1,0,0,0]`` (every output
  produced from a fed-back token is 0, the report's "always 0") and ``[1,1,1,1]``, ending in
  one or the other (12 and 8 of 20 seeds); with sampled feedback (REINFORCE) the best
  memoryless policy has ``p(1 | 1) = 1/3`` and generation is ``[1,0,0,0]`` in 20 of 20.

All modes use the same :class:`nasgen.controllers.rnn.LSTMGenerator` as the ``rnn``
controller (token embedding for the feedback, explicit state), with unclipped logits.
``run_toy`` trains, evaluates free-running (greedy) generation on 100 fixed ``z`` and
returns a :class:`ToyResult` with the diagnostics and the collapse verdict
(:mod:`nasgen.controllers.diagnostics`); ``format_report`` prints it.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasgen.controllers.diagnostics import (Diagnostics, Verdict, compute_diagnostics, detect_collapse,
                                            distinct_per_100, grad_norm)
from nasgen.controllers.diagnostics import format_report as format_diagnostics
from nasgen.controllers.rnn import LSTMGenerator, build_module

TASKS = ("map", "generate")
FEEDBACK_MODES = ("argmax", "sample", "soft", "teacher")
REWARDS = ("sequence", "per_token")


@dataclass
class ToyConfig:
    """Configuration of one toy run (``nasgen toy``)."""

    task: str = "generate"
    """``"map"`` (input sequence -> target, report 4.1) or ``"generate"`` (z -> target with the
    output fed back, report 4.2)."""
    feedback: str = "argmax"
    """How the emitted token is fed back and trained in ``generate``: ``argmax`` (the report's
    setup), ``sample`` (REINFORCE), ``soft`` (Gumbel straight-through) or ``teacher`` (teacher
    forcing, then scheduled sampling). Ignored by ``map``."""
    carry_state: bool = True
    """Pass ``(h, c)`` from one step to the next; False restarts every step from the initial
    state (the generator then sees only the fed-back token)."""
    input: tuple[int, ...] = (1, 0, 1, 0)
    """Input sequence of the ``map`` task (same length as ``target``)."""
    target: tuple[int, ...] = (1, 1, 0, 0)
    """The sequence to emit."""
    n_tokens: Optional[int] = None
    """Vocabulary size; default ``max(input + target) + 1`` and at least 2."""
    steps: int = 300
    """Parameter updates (one batch each)."""
    batch_size: int = 32
    """Sequences per update (``z`` draws, or samples for ``sample``)."""
    hidden_size: int = 32
    """LSTM width."""
    z_dim: int = 8
    """Size of the random ``z`` read at step 0 of ``generate`` (``z ~ N(0, I)``)."""
    lr: float = 1e-2
    """Adam learning rate."""
    entropy_weight: float = 0.1
    """Entropy bonus of ``sample`` (per step, summed). 0.01 is enough for 4 tokens but lets
    the 8-token target entropy-collapse onto zeros; 0.1 learns it in 4 of 5 seeds."""
    baseline_decay: float = 0.9
    """EMA decay of the reward baseline of ``sample``."""
    reward: str = "sequence"
    """``sample`` reward: ``sequence`` (``-(wrong tokens)`` at the end, credited to every
    step) or ``per_token`` (``-1`` per wrong token, each step credited with the reward to go,
    per-step baselines)."""
    gumbel_tau: float = 1.0
    """Temperature of the Gumbel-softmax in ``soft``."""
    tanh_constant: Optional[float] = None
    """Clip the logits to ``c * tanh(l / temperature)`` (ENAS: c = 2.5); None: unclipped."""
    temperature: float = 1.0
    """``T`` dividing the logits (before the tanh when clipping)."""
    teacher_fraction: float = 0.5
    """Share of the updates over which ``teacher`` decays the teacher-forcing probability
    from 1 to 0 (scheduled sampling); the rest runs free."""
    eval_every: int = 10
    """Evaluate free-running generation every this many updates (sets ``learned_at``)."""
    eval_samples: int = 100
    """``z`` draws (fixed) for evaluation and the diagnostics."""
    stop_when_learned: bool = False
    """Stop at the first evaluation where every free-running sequence equals the target."""
    seed: int = 0
    """Seeds the parameters, the ``z`` draws, sampling and Gumbel noise (torch generators)."""

    def __post_init__(self) -> None:
        self.input = tuple(int(v) for v in self.input)
        self.target = tuple(int(v) for v in self.target)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {self.feedback!r}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        if not self.target or min(self.target) < 0:
            raise ValueError(f"target must be a non-empty sequence of non-negative tokens, got {list(self.target)}")
        if self.task == "map" and (len(self.input) != len(self.target) or min(self.input, default=0) < 0):
            raise ValueError(f"map needs an input of non-negative tokens as long as the target; got "
                             f"input {list(self.input)} and target {list(self.target)}")
        needed = max(self.target + (self.input if self.task == "map" else ())) + 1
        if self.n_tokens is None:
            self.n_tokens = max(2, needed)
        elif self.n_tokens < needed:
            raise ValueError(f"n_tokens={self.n_tokens} but the sequences use token {needed - 1}")
        for name in ("lr", "entropy_weight", "baseline_decay", "gumbel_tau", "temperature", "teacher_fraction",
                     "tanh_constant"):
            if getattr(self, name) is not None and not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        for name in ("steps", "batch_size", "hidden_size", "z_dim", "eval_every", "eval_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.entropy_weight < 0 or self.gumbel_tau <= 0 or self.temperature <= 0:
            raise ValueError("need lr > 0, entropy_weight >= 0, gumbel_tau > 0 and temperature > 0")
        if self.tanh_constant is not None and self.tanh_constant <= 0:
            raise ValueError(f"tanh_constant must be > 0 or None, got {self.tanh_constant}")
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


# --- command line -----------------------------------------------------------------------------------
def _token_list(text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace(",", " ").replace("[", " ").replace("]", " ").split() if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected tokens like 1,1,0,0, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative tokens like 1,1,0,0, got {text!r}")
    return values


def add_toy_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``nasgen toy`` flags to ``parser``.

    Args:
        parser: the (sub)parser of ``nasgen toy``.

    Returns:
        The same parser.
    """
    from nasgen.validation import non_negative_float, positive_float, positive_int, seed

    d = ToyConfig()
    parser.add_argument("--task", choices=TASKS, default=d.task, help="map (report 4.1) or generate (4.2)")
    parser.add_argument("--feedback", choices=FEEDBACK_MODES, default=d.feedback,
                        help="how the output is fed back in generate (argmax = the report's setup)")
    parser.add_argument("--carry-state", action=argparse.BooleanOptionalAction, default=d.carry_state,
                        help="pass (h, c) from step to step")
    parser.add_argument("--input", type=_token_list, default=d.input, help="map input tokens, e.g. 1,0,1,0")
    parser.add_argument("--target", type=_token_list, default=d.target, help="target tokens, e.g. 1,1,0,0")
    parser.add_argument("--n-tokens", type=positive_int, default=None, help="vocabulary size (default: from the sequences)")
    parser.add_argument("--steps", type=positive_int, default=d.steps, help="parameter updates")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    parser.add_argument("--hidden-size", type=positive_int, default=d.hidden_size)
    parser.add_argument("--z-dim", type=positive_int, default=d.z_dim)
    parser.add_argument("--lr", type=positive_float, default=d.lr)
    parser.add_argument("--entropy-weight", type=non_negative_float, default=d.entropy_weight, help="sample: entropy bonus")
    parser.add_argument("--baseline-decay", type=non_negative_float, default=d.baseline_decay, help="sample: EMA baseline decay")
    parser.add_argument("--reward", choices=REWARDS, default=d.reward, help="sample: reward shape")
    parser.add_argument("--gumbel-tau", type=positive_float, default=d.gumbel_tau, help="soft: Gumbel temperature")
    parser.add_argument("--tanh-constant", type=positive_float, default=d.tanh_constant,
                        help="clip logits to c*tanh(l/T) (ENAS: 2.5); default unclipped")
    parser.add_argument("--temperature", type=positive_float, default=d.temperature, help="T dividing the logits")
    parser.add_argument("--teacher-fraction", type=positive_float, default=d.teacher_fraction,
                        help="teacher: share of updates over which teacher forcing decays to 0")
    parser.add_argument("--eval-every", type=positive_int, default=d.eval_every)
    parser.add_argument("--eval-samples", type=positive_int, default=d.eval_samples)
    parser.add_argument("--stop-when-learned", action="store_true", help="stop once generation is exact")
    parser.add_argument("--seed", type=seed, default=d.seed)
    return parser


def toy_config_from_args(args: argparse.Namespace) -> ToyConfig:
    """Build a :class:`ToyConfig` from the flags of :func:`add_toy_arguments`.

    Args:
        args: the parsed namespace.

    Returns:
        The configuration (validated).
    """
    return ToyConfig(task=args.task, feedback=args.feedback, carry_state=args.carry_state, input=args.input,
                     target=args.target, n_tokens=args.n_tokens, steps=args.steps, batch_size=args.batch_size,
                     hidden_size=args.hidden_size, z_dim=args.z_dim, lr=args.lr, entropy_weight=args.entropy_weight,
                     baseline_decay=args.baseline_decay, reward=args.reward, gumbel_tau=args.gumbel_tau,
                     tanh_constant=args.tanh_constant, temperature=args.temperature,
                     teacher_fraction=args.teacher_fraction, eval_every=args.eval_every,
                     eval_samples=args.eval_samples, stop_when_learned=args.stop_when_learned, seed=args.seed)


def config_dict(config: ToyConfig) -> dict[str, Any]:
    """The configuration as plain data (for logs and result files)."""
    out = asdict(config)
    out["input"], out["target"] = list(config.input), list(config.target)
    return out


def _log(logger: Any, step: int, metrics: dict[str, float]) -> None:
    if logger is None:
        return
    if hasattr(logger, "add_scalar"):
        for key, value in metrics.items():
            logger.add_scalar(f"toy/{key}", value, step)
    else:
        logger(step, {f"toy/{k}": v for k, v in metrics.items()})
