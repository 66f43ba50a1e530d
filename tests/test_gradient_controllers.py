"""Gradient controllers (``darts`` first and second order, ``snas``, ``gdas``, ``proxyless``).

They run on the small CPU preset of ``OneShotNAS-v0`` (a supernet with trainable weights), on
``TeacherArch-v0`` (frozen weights, known optimum) and on a smooth toy model with trainable
weights, where the second-order DARTS gradient can be checked against the exact one.
"""

from __future__ import annotations

import copy
import math
import types

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import nasgen.envs  # noqa: F401  (registers the env ids)
from nasgen import controllers
from nasgen.controllers.gradient import INACTIVE_GATE, gate_gradient_to_alpha
from nasgen.searchspace import SearchSpace

METHODS = {
    "darts1": ("darts", {"order": 1}),
    "darts2": ("darts", {"order": 2}),
    "snas": ("snas", {}),
    "gdas": ("gdas", {}),
    "proxyless": ("proxyless", {}),
}
GRADIENT_NAMES = ("darts", "snas", "gdas", "proxyless")



def make(method: str, space, seed: int = 0, **kwargs):
    name, defaults = METHODS[method]
    return controllers.make(name, space, seed=seed, **{**defaults, **kwargs})


def oneshot(seed: int = 0):
    env = gym.make("nasgen/OneShotNAS-v0", space="small", warmup_epochs=0, C=4, n_cells=3, seed=seed)
    env.reset()
    return env.unwrapped


def teacher(seed: int = 0, n_edges: int = 6, n_ops: int = 6):
    env = gym.make("nasgen/TeacherArch-v0", n_edges=n_edges, n_ops=n_ops, seed=seed)
    env.reset()
    return env


def same_metrics(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


# --- a smooth stand-in for the supernet, with trainable weights ---------------------------
class ToyModel(nn.Module):
    """Op ``j`` of edge ``e`` is ``tanh(W[e, j] x)``; records every ``weights`` it is given."""

    def __init__(self, n_edges: int, n_ops: int, dim: int, generator: torch.Generator):
        super().__init__()
        self.W = nn.Parameter(torch.randn(n_edges, n_ops, dim, dim, generator=generator) / dim ** 0.5)
        self.register_buffer("readout", torch.randn(n_edges, dim, generator=generator))
        self.seen: list[torch.Tensor] = []

    def forward(self, x, arch=None, *, weights=None, gates=None):
        self.seen.append(weights.detach().clone())
        h = torch.tanh(torch.einsum("ejab,nb->neja", self.W, x))
        return ((h * weights[None, :, :, None]).sum(2) * self.readout).sum((1, 2))


def toy_env(seed: int = 0, n_edges: int = 4, n_ops: int = 3, dim: int = 5, batch: int = 32):
    """An object with the members gradient controllers use; keeps the batches it hands out."""
    generator = torch.Generator().manual_seed(seed)
    model = ToyModel(n_edges, n_ops, dim, generator)
    direction = torch.randn(dim, generator=generator)
    batches = []

    def draw():
        x = torch.randn(batch, dim, generator=generator)
        batches.append((x, torch.sin(3 * x @ direction)))
        return batches[-1]

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    return types.SimpleNamespace(model=model, weight_optimizer=optimizer, next_train_batch=draw,
                                 next_val_batch=draw, loss_fn=F.mse_loss, batches=batches,
                                 space=SearchSpace("toy", [n_ops] * n_edges))


def unrolled_gradient(env, alpha, train_batch, val_batch, fd_radius=None):
    """d/d alpha of L_val(w', alpha), w' = the weight optimiser's next step on L_train(w, alpha).

    Written independently of the controller with ``functional_call``: exact (double backward)
    when ``fd_radius`` is None, else DARTS's finite-difference formula.
    """
    model, optimizer = env.model, env.weight_optimizer
    names, params = zip(*model.named_parameters())
    group = optimizer.param_groups[0]
    exact = fd_radius is None

    def loss(weights_by_name, a, batch):
        x, y = batch
        return env.loss_fn(functional_call(model, weights_by_name, (x,), {"weights": torch.softmax(a, 1)}), y)

    a = alpha.clone().requires_grad_(exact)
    current = dict(zip(names, params))
    grads = torch.autograd.grad(loss(current, a, train_batch), params, create_graph=exact, allow_unused=True)
    virtual = {}
    for name, p, g in zip(names, params, grads):
        g = torch.zeros_like(p) if g is None else g
        buf = optimizer.state[p].get("momentum_buffer")
        step = g + group["weight_decay"] * p + (group["momentum"] * buf if buf is not None else 0.0)
        virtual[name] = p - group["lr"] * step
    if exact:
        return torch.autograd.grad(loss(virtual, a, val_batch), a)[0]
    virtual = {n: w.detach().requires_grad_() for n, w in virtual.items()}
    a = alpha.clone().requires_grad_()
    d_alpha, *v = torch.autograd.grad(loss(virtual, a, val_batch), [a, *virtual.values()], allow_unused=True)
    v = [torch.zeros_like(p) if g is None else g for p, g in zip(params, v)]
    eps = fd_radius / torch.cat([g.flatten() for g in v]).norm()
    shifted = []
    for sign in (1, -1):
        a = alpha.clone().requires_grad_()
        moved = {n: (p + sign * eps * g).detach() for n, p, g in zip(names, params, v)}
        shifted.append(torch.autograd.grad(loss(moved, a, train_batch), a)[0])
    return d_alpha - group["lr"] * (shifted[0] - shifted[1]) / (2 * eps)


def capture_alpha_gradient(ctrl, env):
    """Run one step of ``ctrl`` and return the gradient its alpha step used (alpha is left
    unchanged), the alpha before it, the batches drawn and the env state before the step."""
    alpha = ctrl.alpha.detach().clone()
    state = copy.deepcopy((env.model.state_dict(), env.weight_optimizer.state_dict()))
    drawn = len(env.batches) if hasattr(env, "batches") else None
    captured = []
    ctrl._arch_step = lambda grad: captured.append(grad.clone()) or 0.0
    ctrl.step(env)
    del ctrl._arch_step
    return captured[0], alpha, state, drawn


# --- registry and interface ------------------------------------------------------------------
def test_registered_as_gradient_controllers():
    space = teacher().unwrapped.space
    for name in GRADIENT_NAMES:
        assert name in controllers.names()
        assert controllers.get(name).kind == "gradient"
        assert controllers.make(name, space).kind == "gradient"  # every default works
    with pytest.raises(ValueError, match="order"):
        controllers.make("darts", space, order=3)
    with pytest.raises(TypeError, match="tau_max"):
        controllers.make("snas", space, tau_max=3.0)


def test_step_rejects_a_foreign_environment():
    ctrl = controllers.make("darts", teacher().unwrapped.space)
    with pytest.raises(TypeError, match="model"):
        ctrl.step(types.SimpleNamespace(loss_fn=F.mse_loss))
    with pytest.raises(ValueError, match="search space"):
        ctrl.step(teacher(n_edges=5).unwrapped)


@pytest.mark.parametrize("method", METHODS)
def test_steps_on_oneshot_supernet(method):
    env = oneshot()
    ctrl = make(method, env.space, total_steps=10)
    alpha = ctrl.alpha.detach().clone()
    weights = [p.detach().clone() for p in env.model.parameters()]
    for _ in range(2):
        metrics = ctrl.step(env)
    expected = {"train_loss", "val_loss", "reward", "entropy", "alpha_grad_norm", "param_free_share",
                "param_free_share_reduce", "zero_op_prob", "weight_lr", "evaluations"}
    assert expected <= metrics.keys()
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert metrics["reward"] == -metrics["val_loss"]
    assert ("temperature" in metrics) == (method in ("snas", "gdas"))
    assert 0.0 <= metrics["param_free_share"] <= 1.0
    assert metrics["weight_lr"] < 0.025  # the cosine schedule moved the env's lr
    assert not torch.equal(ctrl.alpha.detach(), alpha)
    assert any(not torch.equal(p, w) for p, w in zip(env.model.parameters(), weights))
    probs = ctrl.op_probabilities()
    assert probs.shape == (env.space.n_decisions, len(env.space.op_names))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    arch = ctrl.derive()
    np.testing.assert_array_equal(env.space.validate(arch), arch)
    env.space.to_genotype(arch)  # the DARTS rule: two inputs per node
    assert math.isfinite(env.score(arch))


def test_the_env_owns_the_weight_lr_and_runs_a_controllers_cosine():
    """A gradient controller asks the env for the papers' cosine over its steps; the env sets
    every step's lr (the one the step used is reported); an env with its own cosine declines."""
    env = oneshot()
    ctrl = make("darts1", env.space, total_steps=6, weight_lr_min=1e-3)
    used = [ctrl.step(env)["weight_lr"] for _ in range(6)]
    expected = [1e-3 + (0.025 - 1e-3) * 0.5 * (1.0 + math.cos(math.pi * t / 6)) for t in range(6)]
    assert used == expected
    fresh = make("darts1", env.space, total_steps=6)
    fresh.load_state_dict(ctrl.state_dict())  # a resumed controller asks again, from its step
    assert env.anneal_weight_lr(1e-3, 6, done=6) and env.weight_optimizer.param_groups[0]["lr"] == expected[-1]
    env.weight_lr_schedule = "cosine"  # a protocol's schedule over warm-up and search
    assert not env.anneal_weight_lr(1e-3, 6)


@pytest.mark.parametrize("method", METHODS)
def test_steps_on_teacher(method):
    env = teacher(n_edges=10, n_ops=10).unwrapped
    ctrl = make(method, env.space, total_steps=5)
    for _ in range(3):
        metrics = ctrl.step(env)
    # No weights to train: only SNAS (single level) computes a training-batch loss.
    assert math.isfinite(metrics["train_loss"]) == (method == "snas")
    assert math.isfinite(metrics["val_loss"]) and metrics["reward"] == -metrics["val_loss"]
    assert "param_free_share" not in metrics and "weight_lr" not in metrics
    arch = ctrl.derive()
    np.testing.assert_array_equal(env.space.validate(arch), arch)


# --- learning ------------------------------------------------------------------------------
TEACHER_STEPS = 100
TEACHER_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def random_best():
    """Per seed, the best held-out score among the architectures ``random`` sampled."""
    best = {}
    for seed in TEACHER_SEEDS:
        env = teacher(seed)
        ctrl = controllers.make("random", env.unwrapped.space, seed=seed)
        scores = []
        for _ in range(TEACHER_STEPS):
            archs = ctrl.ask(1)
            env.reset()  # one-step episodes
            _, reward, *_ = env.step(archs[0])
            ctrl.tell(archs, [reward])
            scores.append(env.unwrapped.score(archs[0]))
        best[seed] = max(scores)
    return best


@pytest.mark.parametrize("method", METHODS)
def test_beats_random_on_teacher(method, random_best):
    """After the same number of steps the derived architecture scores better than the best
    architecture random search sampled.

    Fairness: one step is one batch of 100 inputs for both. ``random`` gets one reward
    evaluation per step (one ``env.step``), as many as the gradient controller takes steps, and
    is credited with the *best held-out score* among everything it sampled, an upper bound of
    what it could answer from noisy rewards. Both are judged by ``env.score`` on the same fixed
    held-out batch. The gradient controllers run their paper defaults, with ``total_steps`` so
    the temperatures anneal over the run; a step costs them a relaxed forward and backward
    (DARTS order 2 several), which is the information gradient methods trade compute for.
    On 6 edges x 6 ops (46,656 architectures) 100 random samples do not find the teacher.
    """
    for seed in TEACHER_SEEDS:
        env = teacher(seed).unwrapped
        ctrl = make(method, env.space, seed=seed, total_steps=TEACHER_STEPS)
        for _ in range(TEACHER_STEPS):
            ctrl.step(env)
        score = env.score(ctrl.derive())
        assert score > random_best[seed], (seed, score, random_best[seed])


# --- DARTS second order ----------------------------------------------------------------------
def test_darts_second_order_differs_from_first_order_on_oneshot():
    runs = {}
    for order in (1, 2):
        env = oneshot()
        ctrl = controllers.make("darts", env.space, seed=0, order=order)
        runs[order] = ([ctrl.step(env) for _ in range(2)], ctrl.alpha.detach().clone())
    (m1, a1), (m2, a2) = runs[1], runs[2]
    assert m1[0]["alpha_grad_norm"] != pytest.approx(m2[0]["alpha_grad_norm"], rel=1e-3)
    assert not torch.allclose(a1, a2)
    assert m2[-1]["evaluations"] > m1[-1]["evaluations"]  # virtual step and two Hessian passes


def test_darts_second_order_is_first_order_without_weights():
    """TeacherArch-v0 has no weights, so there is no virtual step: order 2 == order 1."""
    runs = []
    for order in (1, 2):
        env = teacher().unwrapped
        ctrl = controllers.make("darts", env.space, seed=0, order=order)
        runs.append(([ctrl.step(env) for _ in range(3)], ctrl.alpha.detach().clone()))
    assert all(same_metrics(a, b) for a, b in zip(runs[0][0], runs[1][0]))
    assert torch.equal(runs[0][1], runs[1][1])


def test_darts_second_order_matches_exact_unrolled_gradient_on_smooth_model():
    """On a smooth model the finite-difference Hessian term (eps = 0.01 / ||v||, virtual step
    with the optimiser's lr, momentum and weight decay) gives the exact gradient of the
    unrolled validation loss, while the first-order gradient is far from it."""
    env = toy_env()
    ctrl = controllers.make("darts", env.space, seed=0, order=2)
    ctrl.step(env)  # fills the momentum buffers
    grad, alpha, state, drawn = capture_alpha_gradient(ctrl, env)
    train_batch, val_batch = env.batches[drawn], env.batches[drawn + 1]
    env.model.load_state_dict(state[0])
    env.weight_optimizer.load_state_dict(state[1])
    exact = unrolled_gradient(env, alpha, train_batch, val_batch)
    a = alpha.clone().requires_grad_()
    first = torch.autograd.grad(F.mse_loss(env.model(val_batch[0], weights=torch.softmax(a, 1)),
                                           val_batch[1]), a)[0]
    assert torch.linalg.norm(grad - exact) < 1e-3 * torch.linalg.norm(exact)
    assert torch.linalg.norm(first - exact) > 0.3 * torch.linalg.norm(exact)


def test_darts_second_order_on_supernet_follows_the_paper_formula():
    """On the supernet the controller's alpha gradient equals an independent implementation of
    DARTS's formula, and the virtual step leaves the weights as they were."""
    env = oneshot()
    ctrl = controllers.make("darts", env.space, seed=0, order=2)
    ctrl.step(env)  # fills the momentum buffers
    state = copy.deepcopy(env.state_dict())
    before = [p.detach().clone() for p in env.model.parameters()]
    train_batch, val_batch = env.next_train_batch(), env.next_val_batch()
    ctrl._unrolled_alpha_step(env, train_batch, val_batch)
    assert all(torch.equal(p, w) for p, w in zip(env.model.parameters(), before))
    env.load_state_dict(copy.deepcopy(state))
    grad, alpha, _, _ = capture_alpha_gradient(ctrl, env)
    env.load_state_dict(state)
    reference = unrolled_gradient(env, alpha, env.next_train_batch(), env.next_val_batch(), fd_radius=0.01)
    torch.testing.assert_close(grad, reference, rtol=1e-3, atol=1e-3 * reference.abs().max().item())


# --- the relaxations -------------------------------------------------------------------------
def test_relaxations_pass_the_right_weights():
    for method in METHODS:
        env = toy_env()
        # No alpha weight decay here: it alone would move every alpha.
        ctrl = make(method, env.space, arch_weight_decay=0.0)
        alpha = ctrl.alpha.detach().clone()
        ctrl.step(env)
        seen = env.model.seen
        nonzero = [(w != 0).sum(1) for w in seen]
        if method.startswith("darts") or method == "snas":
            assert all(bool((n == w.shape[1]).all()) for n, w in zip(nonzero, seen))
            assert all(torch.allclose(w.sum(1), torch.ones(w.shape[0])) for w in seen)
        elif method == "gdas":  # weight step and alpha step: one op per edge, value 1
            assert len(seen) == 2 and all(bool((n == 1).all()) for n in nonzero)
            assert all(torch.allclose(w.max(1).values, torch.ones(w.shape[0])) for w in seen)
            assert bool((ctrl.alpha.detach() != alpha).all())  # straight-through reaches every alpha
        else:  # proxyless: one sampled path for the weights, two gated ops for alpha
            weight_step, alpha_step = seen
            assert bool((nonzero[0] == 1).all()) and bool((weight_step.max(1).values == 1).all())
            assert bool((nonzero[1] == 2).all())
            assert sorted(set(alpha_step[alpha_step != 0].tolist())) == pytest.approx([INACTIVE_GATE, 1.0])


def test_gdas_steps_when_its_sample_cuts_every_cell_off():
    """On nb201 a hard sample of ``none`` on the three edges into the output node gives a
    network whose loss does not reach alpha: the step must still run, with a zero gradient."""
    env = gym.make("nasgen/OneShotNAS-v0", space="nb201", dataset="digits", warmup_epochs=0, C=4,
                   n_cells=1, seed=0)
    env.reset()
    env = env.unwrapped
    ctrl = controllers.make("gdas", env.space, seed=0, arch_weight_decay=0.0)
    none = env.space.op_names.index("none")

    def all_none() -> torch.Tensor:
        probs = torch.softmax(ctrl._logits(), dim=1)
        one_hot = torch.zeros_like(probs)
        one_hot[:, none] = 1.0
        return one_hot - probs.detach() + probs

    ctrl.hard_sample = all_none
    alpha = ctrl.alpha.detach().clone()
    metrics = ctrl.step(env)
    assert math.isfinite(metrics["val_loss"]) and metrics["alpha_grad_norm"] == 0.0
    assert torch.equal(ctrl.alpha.detach(), alpha)  # Adam's first step along a zero gradient


def test_temperature_schedules():
    env = teacher().unwrapped
    for name, start, end in (("snas", 1.0, 0.03), ("gdas", 10.0, 0.1)):
        ctrl = controllers.make(name, env.space, total_steps=5)
        temps = [ctrl.step(env)["temperature"] for _ in range(7)]
        np.testing.assert_allclose(temps[:5], np.linspace(start, end, 5), rtol=1e-9)
        assert temps[5] == temps[6] == pytest.approx(end)
        assert controllers.make(name, env.space).temperature() == start


def test_gate_gradient_to_alpha_is_the_softmax_chain_rule():
    generator = torch.Generator().manual_seed(0)
    for k in (2, 3):
        gate_grad, alpha = torch.randn(k, generator=generator), torch.randn(k, generator=generator)
        a = alpha.clone().requires_grad_()
        (expected,) = torch.autograd.grad((gate_grad * torch.softmax(a, 0)).sum(), a)
        torch.testing.assert_close(gate_gradient_to_alpha(gate_grad, alpha), expected)


def test_proxyless_keeps_unsampled_probabilities():
    env = teacher(n_edges=10, n_ops=10).unwrapped
    ctrl = controllers.make("proxyless", env.space, seed=0)
    for _ in range(3):
        alpha, probs = ctrl.alpha.detach().clone(), ctrl.op_probabilities()
        ctrl.step(env)
        changed = (ctrl.alpha.detach() != alpha).numpy()
        assert changed.any() and (changed.sum(1) <= 2).all()
        new = ctrl.op_probabilities()
        np.testing.assert_allclose(new[~changed], probs[~changed], rtol=1e-5)
        np.testing.assert_allclose(new.sum(1), 1.0, rtol=1e-6)


# --- state --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_state_dict_round_trip_continues_identically(method):
    """Restored into a controller made with another seed (and the env restored too), the run
    continues exactly as the original: alpha, Adam, generator, schedules and cosine lr."""
    for env, before, after in ((oneshot(), 1, 2), (teacher().unwrapped, 3, 3)):
        ctrl = make(method, env.space, seed=0, total_steps=6)
        for _ in range(before):
            ctrl.step(env)
        saved, env_saved = ctrl.state_dict(), copy.deepcopy(env.state_dict())
        original = [ctrl.step(env) for _ in range(after)]
        restored = make(method, env.space, seed=123, total_steps=6)
        restored.load_state_dict(saved)
        env.load_state_dict(env_saved)
        again = [restored.step(env) for _ in range(after)]
        assert all(same_metrics(a, b) for a, b in zip(original, again)), (original, again)
        assert torch.equal(ctrl.alpha.detach(), restored.alpha.detach())
        np.testing.assert_array_equal(ctrl.derive(), restored.derive())


def test_load_state_dict_refuses_another_controller():
    space = teacher().unwrapped.space
    with pytest.raises(ValueError, match="darts"):
        controllers.make("snas", space).load_state_dict(controllers.make("darts", space).state_dict())
