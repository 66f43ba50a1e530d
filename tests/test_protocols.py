"""Protocol presets (``nasgen.protocols``): every controller runs under each preset with the
same budget of supernet training, and ``paper`` DARTS trains on the mixture from its first
step with a cosine weight lr."""

from __future__ import annotations

import math

import pytest

from nasgen import controllers, protocols
from nasgen.search import Search, SearchConfig

#: A tiny supernet on digits: 4 training batches per epoch.
TINY = dict(C=4, n_cells=2, limit=64, batch_size=16)
BUDGET = 20  # weight steps: 8 of configured warm-up (2 epochs) + 12 of search


class Recording(Search):
    """``Search`` that records the weight lr and the training batches drawn after each step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trace: list[tuple[int, float]] = []

    def _start(self, *args):
        super()._start(*args)
        env = self.env.unwrapped
        self.trace.append((env.train_stream.batches_drawn, env.weight_optimizer.param_groups[0]["lr"]))

    def _after_step(self):
        env = self.env.unwrapped
        self.trace.append((env.train_stream.batches_drawn, env.weight_optimizer.param_groups[0]["lr"]))


def run(controller: str, protocol: str, tmp_path, steps: int = 12, warmup_epochs: float = 2.0, **config):
    search = Recording(SearchConfig(controller=controller, steps=steps, protocol=protocol, checkpoint_every=10**6,
                                    env_kwargs={**TINY, "warmup_epochs": warmup_epochs}, **config),
                       tmp_path / f"{controller}-{protocol}")
    return search, search.run()


#: Run by default (one of each kind of schedule); the rest of the matrix is marked slow (~3 s each).
FAST = {"credit", "darts", "proxyless", "asng"}
MATRIX = [pytest.param(c, p, marks=() if c in FAST else pytest.mark.slow)
          for p in protocols.names() for c in controllers.names()]


@pytest.mark.parametrize("controller,protocol", MATRIX)
def test_every_controller_runs_each_preset_on_the_same_budget(controller, protocol, tmp_path):
    search, result = run(controller, protocol, tmp_path)
    env = search.env.unwrapped
    plan = search.plan
    share = protocols.get(protocol).method(controller).warmup_share
    assert plan.warmup_steps == (8 if share is None else round(share * BUDGET))
    assert plan.warmup_steps + plan.search_weight_steps == BUDGET
    assert search.trace[0][0] == plan.warmup_steps  # the warm-up ran, and only it
    # every method the same supernet training (ASNG's 2 samples a step round up to whole steps)
    assert BUDGET <= env.train_stream.batches_drawn < BUDGET + search.controller.samples_per_step
    assert result["steps"] == plan.steps(search.controller.samples_per_step)
    assert result["config"]["protocol"] == protocol and result["protocol_plan"]["total_epochs"] == BUDGET / 4
    lrs = [lr for _, lr in search.trace]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(1e-3)  # cosine down to lr_min


def test_paper_darts_trains_the_mixture_from_the_first_step_on_a_cosine(tmp_path):
    search, result = run("darts", "paper", tmp_path)
    assert search.plan.warmup_steps == 0 and search.env.unwrapped.warmup_epochs == 0
    drawn, lrs = zip(*search.trace)
    assert drawn == tuple(range(BUDGET + 1))  # no single-path warm-up: one weight step per search step
    assert result["steps"] == BUDGET
    expected = [1e-3 + (0.025 - 1e-3) * 0.5 * (1 + math.cos(math.pi * k / BUDGET)) for k in range(BUDGET + 1)]
    assert lrs == pytest.approx(expected)
    # the shared preset gives DARTS the configured single-path warm-up instead
    shared, _ = run("darts", "shared", tmp_path)
    assert shared.trace[0][0] == 8 and shared.trace[0][1] == pytest.approx(expected[8])


def test_paper_shares_and_the_default_run_without_a_protocol(tmp_path):
    assert protocols.get("paper").method("credit").warmup_share == pytest.approx(50 / 90)
    assert protocols.get("paper").method("random").warmup_share == pytest.approx(50 / 90)
    assert protocols.get("paper").method("gdas").warmup_share == 0.0
    with pytest.raises(KeyError, match="known: paper, shared"):
        protocols.get("fair")
    search, result = run("darts", None, tmp_path, steps=5)
    assert search.plan is None and result["protocol_plan"] is None
    assert search.trace[0][0] == 8 and search.env.unwrapped.weight_lr_schedule == "constant"


def test_a_protocol_needs_an_env_with_shared_weights(tmp_path):
    config = SearchConfig(controller="credit", env="nasgen/TeacherArch-v0", steps=3, protocol="paper")
    with pytest.raises(ValueError, match="needs an env that trains shared weights"):
        Search(config, tmp_path).run()


def test_a_resumed_protocol_run_ends_as_the_uninterrupted_one(tmp_path):
    from nasgen.search import resume_state

    class Stopping(Search):
        def _after_step(self):
            if self.step == 4:
                raise KeyboardInterrupt  # killed after the checkpoint of step 4

    config = SearchConfig(controller="credit", steps=12, protocol="paper", checkpoint_every=4,
                          env_kwargs={**TINY, "warmup_epochs": 2.0})
    whole = Search(config, tmp_path / "whole").run()
    with pytest.raises(KeyboardInterrupt):
        Stopping(config, tmp_path / "cut").run()
    resumed = Search(config, tmp_path / "cut").run(resume_state=resume_state(tmp_path / "cut"))
    assert resumed["derived_arch"] == whole["derived_arch"] and resumed["score"] == whole["score"]
    assert resumed["protocol_plan"] == whole["protocol_plan"]
