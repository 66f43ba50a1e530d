"""``rnn``: the ENAS LSTM controller (Pham et al. 2018), autoregressive over decisions.

One LSTM step per decision. Step 0 reads a learned start input; every later step reads the
embedding of the token sampled at the step before, so each decision is conditioned on all
earlier ones through the carried ``(h, c)``. Logits are clipped as ENAS does,
``c * tanh(l / T)`` (``tanh_constant`` c = 2.5, ``temperature`` T = 5), invalid choices of
decisions with fewer options are masked out, and the policy is trained by REINFORCE with an
exponential-moving-average baseline and an entropy bonus, with Adam.

The module (:class:`LSTMGenerator`) never stores ``(h, c)``: the state goes in and out of
``step`` explicitly, which is what lets ``nasgen toy`` switch state carrying off to reproduce
the progress report's failure (section 4.2) with the very same module.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Controller, register
from .diagnostics import (CONTROLLER_REMEDIES, Diagnostics, Thresholds, Verdict, compute_diagnostics,
                          detect_collapse, format_report, grad_norm, sample_statistics)

State = tuple[torch.Tensor, torch.Tensor]


def build_module(cls, *args, **kwargs) -> nn.Module:
    """Construct a torch module without moving the global RNG (its default initialisation
    draws are undone; callers re-initialise the parameters from their own generator)."""
    with torch.random.fork_rng(devices=[]):
        return cls(*args, **kwargs)


class LSTMGenerator(nn.Module):
    """A small autoregressive LSTM over tokens (nanoGPT-style: one file, explicit state).

    Args:
        n_tokens: vocabulary size (the largest choice count).
        hidden_size: LSTM width (ENAS: 64 for macro, 100 for micro search).
        tanh_constant: ``c`` of ``c * tanh(l / T)``; None leaves the logits unclipped.
        temperature: ``T``, divides the logits (before the tanh when clipping).
        init_range: parameters start uniform in ``[-init_range, init_range]`` (ENAS: 0.1);
            None keeps PyTorch's default initialisation (drawn from ``generator`` too).
        generator: draws the initial parameters (no global seeding).
        n_positions: when > 0, a learned logit bias per position (decision) is added to the
            head's output before clipping, so each decision can move its own distribution
            directly (not in ENAS, which shares one softmax; it makes the controller at least
            as fast as a factorised policy). The toy keeps it off: a position bias would hand
            the state-less generator the position it is meant to lack.
    """

    def __init__(self, n_tokens: int, hidden_size: int = 64, tanh_constant: Optional[float] = 2.5,
                 temperature: float = 5.0, init_range: Optional[float] = 0.1,
                 generator: Optional[torch.Generator] = None, n_positions: int = 0):
        super().__init__()
        if n_tokens < 1 or hidden_size < 1:
            raise ValueError(f"n_tokens and hidden_size must be >= 1, got {n_tokens}, {hidden_size}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.n_tokens, self.hidden_size = n_tokens, hidden_size
        self.tanh_constant, self.temperature = tanh_constant, float(temperature)
        self.start = nn.Parameter(torch.empty(hidden_size))            # learned start input
        self.embed = build_module(nn.Embedding, n_tokens, hidden_size)     # feedback: sampled token -> input
        self.cell = build_module(nn.LSTMCell, hidden_size, hidden_size)
        self.head = build_module(nn.Linear, hidden_size, n_tokens)
        self.position_bias = nn.Parameter(torch.zeros(n_positions, n_tokens)) if n_positions > 0 else None
        # Added to the logits after clipping; only the rnn controller's zero_op_bias sets it.
        self.register_buffer("logit_bias", torch.zeros(n_tokens))
        with torch.no_grad():
            for p in self.parameters():
                if init_range is not None:
                    p.uniform_(-init_range, init_range, generator=generator)
                else:  # PyTorch's defaults, drawn from our generator
                    bound = 1.0 / math.sqrt(hidden_size)
                    p.uniform_(-bound, bound, generator=generator)
            if init_range is None:
                self.embed.weight.normal_(0.0, 1.0, generator=generator)
            if self.position_bias is not None:
                self.position_bias.zero_()

    def initial_state(self, batch: int) -> State:
        """Zero ``(h, c)`` for ``batch`` sequences."""
        h = self.start.new_zeros(batch, self.hidden_size)
        return h, h.clone()

    def start_input(self, batch: int) -> torch.Tensor:
        """The learned start input, ``[batch, hidden]``."""
        return self.start[None].expand(batch, -1)

    def logits(self, h: torch.Tensor, t: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, raw)`` at position ``t``: ``c * tanh(l/T) + bias`` and ``tanh(l/T)``
        (``l/T`` when unclipped); ``l`` is the head's output plus the position bias."""
        l = self.head(h)
        if self.position_bias is not None and t is not None:
            l = l + self.position_bias[t]
        raw = l / self.temperature
        if self.tanh_constant is not None:
            raw = torch.tanh(raw)
            return self.tanh_constant * raw + self.logit_bias, raw
        return raw + self.logit_bias, raw

    def step(self, x: torch.Tensor, state: State, t: Optional[int] = None) -> tuple[torch.Tensor, State]:
        """One decision ``t``: input ``x [B, hidden]`` and state in, logits ``[B, K]`` and state out."""
        h, c = self.cell(x, state)
        return self.logits(h, t)[0], (h, c)

    def forward(self, tokens: torch.Tensor, mask: Optional[torch.Tensor] = None, x0: Optional[torch.Tensor] = None,
                carry: bool = True, trace: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher-forced pass over given sequences: the log-probabilities of sampling them.

        Args:
            tokens: ``[B, T]`` sequences; step ``t`` reads ``embed(tokens[:, t-1])``.
            mask: ``[T, K]`` bool, valid tokens per step (None: all valid).
            x0: ``[B, hidden]`` input of step 0 (default: the learned start input).
            carry: pass ``(h, c)`` on between steps (False restarts every step from zeros).
            trace: also record ``hidden``, ``cell``, ``raw`` and ``h_reset`` (the hidden state
                each input gives from the initial state) for the diagnostics.

        Returns:
            ``(logits [B, T, K] masked with -inf, trace dict)``.
        """
        batch, steps = tokens.shape
        x = self.start_input(batch) if x0 is None else x0
        init = self.initial_state(batch)
        state = init
        out, record = [], {"hidden": [], "cell": [], "raw": [], "h_reset": []}
        for t in range(steps):
            if t > 0:
                x = self.embed(tokens[:, t - 1])
            h, c = self.cell(x, state if carry else init)
            logits, raw = self.logits(h, t)
            if mask is not None:
                logits = logits.masked_fill(~mask[t], float("-inf"))
            out.append(logits)
            state = (h, c)
            if trace:
                record["hidden"].append(h)
                record["cell"].append(c)
                record["raw"].append(raw)
                with torch.no_grad():
                    record["h_reset"].append(self.cell(x, init)[0])
        traced = {k: torch.stack(v, dim=1) for k, v in record.items() if v}
        return torch.stack(out, dim=1), traced

    @torch.no_grad()
    def generate(self, n: int, steps: int, *, mask: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None, greedy: bool = False,
                 x0: Optional[torch.Tensor] = None, carry: bool = True) -> torch.Tensor:
        """Sample (or greedily decode) ``n`` sequences of ``steps`` tokens.

        Args:
            n: how many sequences.
            steps: tokens per sequence (the number of decisions).
            mask: ``[steps, K]`` bool, valid tokens per step.
            generator: the torch generator to sample from (required unless ``greedy``).
            greedy: take the most likely token at each step (``derive``).
            x0: ``[n, hidden]`` input of step 0 (default: the learned start input).
            carry: pass ``(h, c)`` on between steps.

        Returns:
            ``[n, steps]`` int64 tokens.
        """
        x = self.start_input(n) if x0 is None else x0      # step 0 reads the start input (or z)
        init = self.initial_state(n)
        state = init
        tokens = []
        for t in range(steps):
            logits, state = self.step(x, state if carry else init, t)  # (h, c) in, (h, c) out
            if mask is not None:
                logits = logits.masked_fill(~mask[t], float("-inf"))  # choices this decision lacks
            if greedy:
                token = logits.argmax(dim=-1)
            else:
                token = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
            tokens.append(token)
            x = self.embed(token)                               # feed the sampled token back, embedded
        return torch.stack(tokens, dim=1)


@register("rnn")
class RNNController(Controller):
    """The ENAS LSTM generator trained by REINFORCE.

    Update per ``tell`` (one Adam step on the told batch)::

        A_k    = (R_k - b) / s          s = 1, or an EMA of |R - b| with normalize_advantage
        loss   = -mean_k A_k * log p(a_k) - entropy_weight * mean_k sum_t H_t(a_k)
        b     <- decay * b + (1 - decay) * mean_k R_k      (b starts at the first batch's mean)

    ``log p(a_k)`` is recomputed by a teacher-forced pass over the told architectures, so
    architectures that ``ask`` did not produce can be told too. Non-finite rewards are
    skipped and counted (``nonfinite_rewards``).

    Every ``tell`` also returns the collapse diagnostics (``diagnostics/...`` keys, and
    ``diagnostics/collapsed`` = 1.0 when the detector fires); ``diagnose()`` gives the full
    report, whose ``verdict``, ``cause`` and ``remedy`` the search loop turns into its one
    visible warning.

    Args:
        space: the search space (decisions may have different choice counts; the missing
            choices are masked out).
        seed: seeds the parameter initialisation and the sampling generator.
        hidden_size: LSTM width (ENAS macro search: 64).
        lr: Adam learning rate of the LSTM, embedding and head. ENAS used 3.5e-4 over
            thousands of controller steps; 5e-3 (with ``position_lr``) learns within the few
            hundred evaluations of a search here (tests/test_rnn.py checks it beats random).
        tanh_constant: ``c`` of ``c * tanh(l / T)`` (ENAS: 2.5); None disables clipping.
        temperature: ``T`` (ENAS: 5.0).
        entropy_weight: weight of the entropy bonus, a loss term ``-w * sum_t H_t`` (ENAS:
            1e-4, added to the reward there); 1e-3 learns faster here (docs: Controllers > rnn).
        baseline_decay: EMA decay of the reward baseline (docs/design.md: 0.95-0.99; ENAS 0.99).
        normalize_advantage: divide advantages by a running mean of ``|R - b|`` (not in ENAS;
            off by default: with one sample per update it turns every update into a sign step).
        grad_clip: clip the global gradient norm at this value (None: no clipping).
        zero_op_bias: added to the zero op's logit after clipping. 0 (default) is ENAS;
            a large positive value forces a collapse onto the zero op (used to check the
            collapse detector), a negative one discourages the zero op.
        init_range: parameters start uniform in ``[-init_range, init_range]`` (ENAS: 0.1).
        position_bias: add a learned logit bias per decision (not in ENAS, whose decisions
            share one softmax). With it the controller contains a factorised policy and learns
            as fast as one; without it (ENAS as published) it needs far more evaluations.
        position_lr: Adam learning rate of that bias (default 5e-2, the ``reinforce``
            controller's rate on its logits); None uses ``lr``.
        history: how many recent samples the distinct-architecture and diagnose statistics use.
    """

    def __init__(self, space, seed: int = 0, hidden_size: int = 64, lr: float = 5e-3,
                 tanh_constant: Optional[float] = 2.5, temperature: float = 5.0, entropy_weight: float = 1e-3,
                 baseline_decay: float = 0.95, normalize_advantage: bool = False, grad_clip: Optional[float] = 5.0,
                 zero_op_bias: float = 0.0, history: int = 100, init_range: Optional[float] = 0.1,
                 position_bias: bool = True, position_lr: Optional[float] = 5e-2):
        super().__init__(space, seed)
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if lr <= 0 or entropy_weight < 0 or history < 1:
            raise ValueError(f"need lr > 0, entropy_weight >= 0, history >= 1; got {lr}, {entropy_weight}, {history}")
        if init_range is not None and not 0 < init_range <= 1e3:
            raise ValueError(f"init_range must be None or in (0, 1000], got {init_range}")
        if not abs(zero_op_bias) <= 1e6:  # a logit offset; float32 logits overflow far beyond
            raise ValueError(f"zero_op_bias must lie in [-1e6, 1e6], got {zero_op_bias}")
        self.hidden_size, self.lr = hidden_size, lr
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.normalize_advantage, self.grad_clip = normalize_advantage, grad_clip
        self.zero_op_bias = float(zero_op_bias)
        init_gen = torch.Generator().manual_seed(int(seed))
        self.model = LSTMGenerator(space.max_choices, hidden_size, tanh_constant, temperature, init_range, init_gen,
                                   n_positions=space.n_decisions if position_bias else 0)
        if self.zero_op_bias:
            self.model.logit_bias[0] = self.zero_op_bias
        self.mask = torch.as_tensor(space.choice_mask())
        pos = [self.model.position_bias] if self.model.position_bias is not None else []
        rest = [p for n_, p in self.model.named_parameters() if n_ != "position_bias"]
        groups = [{"params": rest, "lr": lr}]
        if pos:
            groups.append({"params": pos, "lr": lr if position_lr is None else position_lr})
        self.optimizer = torch.optim.Adam(groups)
        self.generator = torch.Generator().manual_seed(int(seed) + 1)  # sampling stream
        self.baseline: Optional[float] = None
        self.adv_scale: Optional[float] = None
        self.updates = 0
        self.best_reward = -math.inf
        self.history = history
        self.recent: deque[tuple[int, ...]] = deque(maxlen=history)          # asked architectures
        self.recent_rewards: deque[tuple[tuple[int, ...], float]] = deque(maxlen=history)  # told
        self.last_grads: dict[str, float] = {}
        self.last_diagnostics: Optional[Diagnostics] = None

    # --- interface ---------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[np.ndarray]:
        n = self._check_ask(n)
        tokens = self.model.generate(n, self.space.n_decisions, mask=self.mask, generator=self.generator)
        archs = [row.numpy().astype(np.int64) for row in tokens]
        self.recent.extend(tuple(int(v) for v in a) for a in archs)
        return archs

    def tell(self, archs: Sequence[Any], rewards: Sequence[float],
             infos: Optional[Sequence[dict]] = None) -> dict[str, float]:
        archs, rewards, infos, finite = self._check_tell(archs, rewards, infos)
        if not finite.any():
            return self._metrics(archs, rewards, finite, baseline=self._baseline_value())
        good, r = archs[finite], rewards[finite]
        self.recent_rewards.extend((tuple(int(v) for v in a), float(x)) for a, x in zip(good, r))
        self.best_reward = max(self.best_reward, float(r.max()))
        if self.baseline is None:
            self.baseline = float(r.mean())
        used_baseline = self.baseline
        advantage = r - self.baseline
        if self.normalize_advantage:
            spread = float(np.abs(advantage).mean())
            if self.adv_scale is None:
                self.adv_scale = spread
            else:
                self.adv_scale = self.baseline_decay * self.adv_scale + (1 - self.baseline_decay) * spread
            advantage = advantage / max(self.adv_scale, 1e-12) if self.adv_scale > 0 else advantage * 0.0
        tokens = torch.as_tensor(good)
        logits, trace = self.model(tokens, self.mask, trace=True)
        logp_all = F.log_softmax(logits, dim=-1)
        probs = logp_all.exp()
        logp = logp_all.gather(-1, tokens[..., None])[..., 0].sum(dim=1)           # [n]
        step_entropy = -(probs * torch.where(probs > 0, logp_all, torch.zeros_like(logp_all))).sum(-1)  # [n, T]
        adv = torch.as_tensor(advantage, dtype=logp.dtype)
        loss = -(adv * logp).mean() - self.entropy_weight * step_entropy.sum(dim=1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.last_grads = {"recurrent": grad_norm(self.model.cell.weight_hh),
                           "embedding": grad_norm(self.model.embed.weight),
                           "total": grad_norm(self.model.parameters())}
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.updates += 1
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * float(r.mean())

        diag = self._diagnostics(tokens, probs.detach(), trace)
        verdict = self._verdict(diag)
        per_step = step_entropy.detach().mean(dim=0).numpy()
        extra = {"baseline": used_baseline, "entropy": float(per_step.mean()),
                 "distinct_share": diag.distinct_per_100 / 100.0, "loss": float(loss.detach()),
                 "updates": float(self.updates)}
        extra.update({f"diagnostics/entropy_step/{t}": float(v) for t, v in enumerate(per_step)})
        extra.update(diag.as_metrics())
        extra["diagnostics/collapsed"] = float(verdict.collapsed)
        return self._metrics(archs, rewards, finite, **extra)

    def derive(self) -> np.ndarray:
        """Greedy decode: the most likely choice at each decision, fed back."""
        tokens = self.model.generate(1, self.space.n_decisions, mask=self.mask, greedy=True)
        return tokens[0].numpy().astype(np.int64)

    def op_probabilities(self) -> np.ndarray:
        """``[n_decisions, max_choices]``: each decision's distribution along the greedy path."""
        with torch.no_grad():
            tokens = torch.as_tensor(self.derive())[None]
            logits, _ = self.model(tokens, self.mask)
            return F.softmax(logits[0], dim=-1).numpy().astype(np.float64)

    # --- diagnostics ----------------------------------------------------------------------------
    def diagnose(self) -> "CollapseReport":
        """The collapse report on the recent samples (no randomness is consumed).

        Re-runs the current model on the last ``history`` asked architectures (or, before
        any ``ask``, on 100 sampled from a separate generator), and judges them with the
        rewards told for them and the gradient norms of the last update.

        Returns:
            A :class:`CollapseReport` (``.verdict``, ``.diagnostics``, ``.text()``, ``.warning()``).
        """
        if self.recent:
            tokens = torch.as_tensor(np.array(list(self.recent), dtype=np.int64))
        else:
            gen = torch.Generator().manual_seed(int(self.seed) + 2)
            tokens = self.model.generate(100, self.space.n_decisions, mask=self.mask, generator=gen)
        with torch.no_grad():
            logits, trace = self.model(tokens, self.mask, trace=True)
            probs = F.softmax(logits, dim=-1)
        diag = self._diagnostics(tokens, probs, trace)
        return CollapseReport(diag, self._verdict(diag), self.space.op_names if hasattr(self.space, "op_names") else None)

    def _diagnostics(self, tokens: torch.Tensor, probs: torch.Tensor, trace: dict) -> Diagnostics:
        diag = compute_diagnostics(
            tokens, probs, mask=self.mask.numpy(), hidden=trace["hidden"], cell=trace["cell"],
            h_reset=trace["h_reset"], raw_logits=trace["raw"] if self.model.tanh_constant is not None else None,
            grad_norm_recurrent=self.last_grads.get("recurrent"),
            grad_norm_embedding=self.last_grads.get("embedding"))
        if self.recent:  # sample statistics over the recent samples, not one batch
            for key, value in sample_statistics(list(self.recent), self.space.max_choices).items():
                setattr(diag, key, value)
        self.last_diagnostics = diag
        return diag

    def _verdict(self, diag: Diagnostics) -> Verdict:
        mode_rewards = [r for a, r in self.recent_rewards if a == diag.mode_sequence]
        recent = [r for _, r in self.recent_rewards]
        mode_reward = float(np.mean(mode_rewards)) if mode_rewards else None
        spread = (self.best_reward - float(np.mean(recent))) if recent else None
        thresholds = None
        if not self.space.zero_op:  # choice 0 is an ordinary op here: no zero collapse to detect
            thresholds = Thresholds(zero_share=math.inf)
        return detect_collapse(diag, score_function=True, mode_reward=mode_reward,
                               best_reward=self.best_reward if recent else None,
                               reward_spread=spread, thresholds=thresholds)

    def _baseline_value(self) -> float:
        return float("nan") if self.baseline is None else self.baseline

    # --- checkpointing ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(),
                "model": {k: v.clone() for k, v in self.model.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "generator": self.generator.get_state().clone(),
                "baseline": self.baseline, "adv_scale": self.adv_scale, "updates": self.updates,
                "best_reward": self.best_reward, "recent": list(self.recent),
                "recent_rewards": list(self.recent_rewards), "last_grads": dict(self.last_grads)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.generator.set_state(state["generator"].clone())
        self.baseline, self.adv_scale = state["baseline"], state["adv_scale"]
        self.updates, self.best_reward = state["updates"], state["best_reward"]
        self.recent = deque((tuple(a) for a in state["recent"]), maxlen=self.history)
        self.recent_rewards = deque(((tuple(a), r) for a, r in state["recent_rewards"]), maxlen=self.history)
        self.last_grads = dict(state["last_grads"])


class CollapseReport:
    """A diagnostics snapshot with its verdict (what ``diagnose()`` returns).

    Attributes:
        verdict: ``"healthy"``, ``"collapsed to zero"`` or ``"collapsed to a constant sequence"``.
        cause: the most likely cause (None when healthy or unclear); ``causes`` lists all.
        remedy: the remedy to try for ``cause``; ``remedies`` lists all.
        collapsed: ``verdict != "healthy"``.
        detail: the detector's :class:`Verdict` (with the reasons and their numbers).
        diagnostics: the :class:`Diagnostics`.
    """

    def __init__(self, diagnostics: Diagnostics, verdict: Verdict, token_names: Optional[Sequence[str]] = None):
        self.diagnostics, self.detail, self.token_names = diagnostics, verdict, token_names
        self.verdict: str = verdict.verdict
        self.causes: list[str] = list(verdict.causes)
        self.remedies: list[str] = list(verdict.remedies)
        self.cause: Optional[str] = self.causes[0] if self.causes else None
        self.remedy: Optional[str] = self.remedies[0] if self.remedies else None
        #: the flag to try under ``nasgen search --controller rnn``
        self.search_remedy: Optional[str] = CONTROLLER_REMEDIES.get(self.cause, self.remedy)

    @property
    def collapsed(self) -> bool:
        return self.detail.collapsed

    def text(self) -> str:
        """The printable report."""
        return format_report(self.diagnostics, self.detail, self.token_names)

    def warning(self) -> str:
        """One visible line on a collapse, empty when healthy."""
        return self.detail.warning()

    def __str__(self) -> str:
        return self.text()
