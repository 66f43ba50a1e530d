"""The search loop: any registered controller against any registered environment.

Black-box controllers run ``ask -> env.step -> tell``; gradient controllers run their own
``step(env.unwrapped)``. The loop logs to a logger it is given (the CLI makes the
``SummaryWriter``), checkpoints atomically, resumes exactly, and writes the results.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from nasgen import controllers, jsonfile, protocols
from nasgen.checkpoint import CheckpointError, load_checkpoint, remove_temporaries, save_checkpoint
from nasgen.config import SearchConfig, check_fields, env_kwargs
from nasgen.controllers.diagnostics import parameter_free_cells
from nasgen.nb1d import judge
from nasgen.runtime import seed_everything  # noqa: F401  (the search's own seeding, a public name here)
from nasgen.searchspace import CellSpace, plot_cell, plot_op_probabilities
from nasgen.tblog import hyperparameter_table, write_hparams

CHECKPOINT_NAME = "checkpoint.pt"
#: The lock a running search holds on its run directory (a second run of it is refused).
RUN_LOCK = "run.lock"

# Controller metric names -> TensorBoard tags (fixed families); other names go to search/.
_TAGS = {"reward_mean": "charts/reward", "reward_max": "charts/reward_max", "reward": "charts/reward",
         "train_loss": "losses/train", "val_loss": "losses/val", "baseline": "losses/baseline",
         "entropy": "search/entropy", "zero_op_share": "search/zero_op_share"}


def _global_rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_env(config: SearchConfig, progress: bool = False) -> gym.Env:
    """The environment of ``config`` (``config.env_kwargs``; ``progress`` shows its warm-up bar)."""
    return gym.make(config.env, **env_kwargs(config, progress))


class Search:
    """One search run.

    Subclasses (the data-parallel search of ``nasgen.distributed``) adapt it through
    ``is_main``, ``_after_step``, ``checkpoint``, ``_config_rows`` and ``_result_extras``.

    Args:
        config: what to run.
        run_dir: where results, checkpoints and (through the logger) curves go.
        logger: a ``SummaryWriter``-like object (``add_scalar``, ``add_text``, ``add_figure``),
            or None.
        progress: show tqdm bars (the env's warm-up, then the search).
    """

    def __init__(self, config: SearchConfig, run_dir: str | Path, logger: Any = None, progress: bool = False):
        check_fields(config)  # cheap; the full gate (config.check) is the command line's and the sweep's
        self.config = config
        self.run_dir = Path(run_dir)
        self.logger = logger
        self.progress = progress
        self.env = make_env(config, progress=progress)
        self.controller_class = controllers.get(config.controller)
        self.step = 0
        self.best_reward = -math.inf
        self.best_arch: Optional[np.ndarray] = None
        self.wall_time = 0.0
        self.loop_time = 0.0
        self.setup_time = 0.0
        self.evaluations = 0
        self.warnings_given: set[str] = set()
        self.plan: Optional[protocols.Plan] = None  #: set by ``_start`` under a protocol
        self.judge = self._ground_truth()
        #: Where a partial table's judge trains the derived cell it lacks (None: the run
        #: directory's ``judge.FILL_NAME``); a build folder that processes may share.
        self.fill: Optional[Path] = None

    #: only the main process logs and writes files
    is_main = True
    #: end with a credit-quality check on the derived architecture (extra forward passes)
    final_credit_check = True

    def _ground_truth(self):
        """The table that judges this search (``nasgen.nb1d.judge``), or None.

        Raises:
            TableError: ``config.table`` names a table that cannot judge this search.
        """
        env = self.env.unwrapped
        data = getattr(env, "data", None)
        return judge.for_search(self.config.table, env.space, getattr(data, "name", None),
                                       self.config.env_kwargs.get("dataset_options"))

    # --- setup ---------------------------------------------------------------------------------
    def _start(self, resume_state: Optional[dict], env_state: Optional[dict]) -> None:
        self.plan = None
        if self.config.protocol is not None:
            self.plan = protocols.plan_search(self.config, self.env.unwrapped)
            protocols.apply_plan(self.env.unwrapped, self.plan)
        options = {"warmup": False} if (resume_state or env_state) else None
        start = time.perf_counter()
        self.env.reset(seed=self.config.seed, options=options)
        self.setup_time = time.perf_counter() - start  # the supernet's build and warm-up
        if env_state:
            self.env.unwrapped.load_state_dict(env_state)
        self.space = self.env.unwrapped.space
        kwargs = dict(self.config.controller_kwargs)
        if "total_steps" in controllers.hyperparameters(self.config.controller):
            # Schedules (temperature, cosine lr) anneal over the real run length.
            kwargs.setdefault("total_steps", self._resolve_steps(samples_per_step=1))
        self.controller = controllers.make(self.config.controller, self.space, seed=self.config.seed, **kwargs)
        self.total_steps = self._resolve_steps(self.controller.samples_per_step)
        if resume_state:
            self.load_state_dict(resume_state)

    def _resolve_steps(self, samples_per_step: int) -> int:
        if self.plan is not None:
            return self.plan.steps(samples_per_step)
        if self.config.epochs is not None:
            stream = getattr(self.env.unwrapped, "val_stream", None)
            if stream is None:
                raise ValueError(f"epochs needs an env with a validation split; {self.config.env} has "
                                 f"none, give steps instead")
            return max(1, math.ceil(self.config.epochs * stream.batches_per_epoch / samples_per_step))
        return self.config.budget_steps

    # --- one step --------------------------------------------------------------------------------
    def _play(self, arch: np.ndarray) -> tuple[float, dict]:
        """Reward of one architecture: one step of a one-step env, or one token per step."""
        self.env.reset()
        if isinstance(self.env.action_space, gym.spaces.MultiDiscrete):
            _, reward, _, _, info = self.env.step(arch)
            return float(reward), info
        total = 0.0
        for token in arch:
            _, reward, terminated, truncated, info = self.env.step(int(token))
            total += float(reward)
            if terminated or truncated:
                break
        return total, info

    def _one_step(self) -> dict[str, float]:
        if self.controller.kind == "gradient":
            return self._gradient_step()
        archs = self.controller.ask(self.controller.samples_per_step)
        rewards, infos = zip(*(self._play(a) for a in archs))
        self._record(archs, rewards, infos)
        return self._with_info_metrics(self.controller.tell(archs, list(rewards), list(infos)), infos)

    def _gradient_step(self) -> dict[str, float]:
        metrics = self.controller.step(self.env.unwrapped)
        self.evaluations += 1
        reward = metrics.get("reward", math.nan)
        if math.isfinite(reward) and reward > self.best_reward:
            self.best_reward, self.best_arch = reward, self.controller.derive()
        return metrics

    def _record(self, archs, rewards, infos) -> None:
        """Count the evaluations and keep the best finite reward seen."""
        self.evaluations += sum(int(info.get("evaluations", 1)) for info in infos)
        for arch, reward, info in zip(archs, rewards, infos):
            if math.isfinite(reward) and not info.get("nonfinite") and reward > self.best_reward:
                self.best_reward, self.best_arch = reward, np.array(arch)

    @staticmethod
    def _with_info_metrics(metrics: dict[str, float], infos) -> dict[str, float]:
        """Add the env's training loss, accuracy and credit health to the controller's metrics."""
        for key in ("train_loss", "val_loss", "val_accuracy", "credit_corr"):
            values = [info[key] for info in infos
                      if isinstance(info.get(key), (int, float)) and math.isfinite(info[key])]
            if values and key not in metrics:
                metrics[key] = float(np.nanmean(values)) if key != "credit_corr" else values[-1]
        for info in infos:  # the env's credit-quality check (Taylor / hybrid vs exact), when due
            metrics.update({f"credit/{k}": v for k, v in info.get("credit_check", {}).items()})
        return metrics

    # --- logging -----------------------------------------------------------------------------------
    def _log(self, metrics: dict[str, float], sps: float) -> None:
        if self.logger is None:
            return
        for key, value in metrics.items():
            if isinstance(value, (int, float, np.floating)) and math.isfinite(value):
                tag = key if "/" in key else _TAGS.get(key, f"search/{key}")
                self.logger.add_scalar(tag, float(value), self.step)
        if math.isfinite(self.best_reward):
            self.logger.add_scalar("charts/best_reward", self.best_reward, self.step)
        self.logger.add_scalar("charts/SPS", sps, self.step)
        self.logger.add_scalar("charts/evaluations", self.evaluations, self.step)

    def _log_architecture(self) -> None:
        if self.logger is None:
            return
        arch = self.controller.derive()
        self.logger.add_text("search/architecture", f"```\n{self.space.describe(arch)}\n```", self.step)
        if isinstance(self.space, CellSpace):
            for cell, share in self.space.parameter_free_share(arch).items():
                self.logger.add_scalar(f"search/param_free_share_{cell}", share, self.step)
        probs = self.controller.op_probabilities()
        if probs is not None:
            figure = plot_op_probabilities(self.space, probs, title=f"step {self.step}")
            self.logger.add_figure("search/op_probabilities", figure, self.step)

    def _warn_on_collapse(self) -> None:
        """Print one visible line the first time a controller's ``diagnose()`` reports a collapse."""
        diagnose = getattr(self.controller, "diagnose", None)
        if diagnose is None:
            return
        report = diagnose()
        verdict = getattr(report, "verdict", "healthy")
        if verdict == "healthy" or verdict in self.warnings_given:
            return
        self.warnings_given.add(verdict)
        cause = getattr(report, "cause", None)
        remedy = getattr(report, "search_remedy", None) or getattr(report, "remedy", None)
        line = (f"WARNING: {self.config.controller} controller {verdict} at step {self.step}"
                + (f"; likely cause: {cause}" if cause else "") + (f"; try {remedy}" if remedy else ""))
        tqdm.write(line, file=sys.stderr)  # above the progress bar, not through it
        if self.logger is not None:
            self.logger.add_text("diagnostics/warning", line, self.step)

    def _warn_on_parameter_free_cells(self) -> None:
        """One visible line when the derived architecture has a cell of parameter-free ops only
        (the DARTS-style collapse to skip connections and pooling), whatever the controller."""
        if not isinstance(self.space, CellSpace) or self.warnings_given:
            return  # one warning per run: a collapse already reported explains the cells too
        cells = parameter_free_cells(self.space, self.controller.derive())
        if not cells:
            return
        self.warnings_given.add("parameter-free cell")
        which = "" if cells == ["cell"] else " and ".join(cells) + " "  # nb201 has one cell type, "cell"
        line = (f"WARNING: {self.config.controller} derived a parameter-free {which}cell"
                f"{'s' if len(cells) > 1 else ''} at step {self.step} (only skip connections, pooling or "
                f"no op): such a cell learns nothing; likely a collapse to parameter-free ops. Try more "
                f"--warmup-epochs or --steps, or another controller")
        tqdm.write(line, file=sys.stderr)
        if self.logger is not None:
            self.logger.add_text("diagnostics/warning", line, self.step)

    # --- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        env_state = getattr(self.env.unwrapped, "state_dict", None)
        if env_state is None:
            raise CheckpointError(f"env {self.config.env} cannot be checkpointed (no state_dict)")
        return {"config": asdict(self.config), "step": self.step, "controller": self.controller.state_dict(),
                "env": env_state(), "rng": _global_rng_state(),
                "loop": {"best_reward": self.best_reward, "best_arch": self.best_arch,
                         "wall_time": self.wall_time, "loop_time": self.loop_time, "evaluations": self.evaluations,
                         "warnings_given": sorted(self.warnings_given)}}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (a checkpoint of this run).

        Raises:
            CheckpointError: a checkpoint that decoded safely but whose states do not fit this
                run's controller, env or loop (a hand-made or foreign file), in one line.
        """
        try:
            self.controller.load_state_dict(state["controller"])
            self.env.unwrapped.load_state_dict(state["env"])
            self._load_loop_state(state)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"checkpoint in {self.run_dir} holds a state this run cannot load "
                                  f"({type(error).__name__}: {detail})") from None

    def _load_loop_state(self, state: dict) -> None:
        _set_global_rng_state(state["rng"])
        self.step = state["step"]
        loop = state["loop"]
        self.best_reward, self.best_arch = loop["best_reward"], loop["best_arch"]
        self.wall_time, self.evaluations = loop["wall_time"], loop["evaluations"]
        self.loop_time = loop.get("loop_time", self.wall_time)  # checkpoints from before it was kept
        self.warnings_given = set(loop["warnings_given"])

    def checkpoint(self) -> Optional[Path]:
        return save_checkpoint(self.state_dict(), self.run_dir / CHECKPOINT_NAME)

    # --- hooks for subclasses ------------------------------------------------------------------
    def _after_step(self) -> None:
        """Called after every step (and its checkpoint)."""

    def _config_rows(self) -> dict:
        """The hyper-parameters written once to TensorBoard."""
        return asdict(self.config)

    def _result_extras(self) -> dict:
        """Entries added to ``result.json``."""
        return {}

    # --- the run ---------------------------------------------------------------------------------------
    def run(self, resume_state: Optional[dict] = None, env_state: Optional[dict] = None) -> dict:
        """Run to ``total_steps`` (from the checkpointed step when resuming).

        Args:
            resume_state: a checkpoint of this run (``resume_state(run_dir)``) to continue.
            env_state: ``env.unwrapped.state_dict()`` to start the search from instead of a
                fresh warm-up, e.g. one shared warmed-up supernet for several controllers.

        Returns:
            The result dict also written to ``result.json``.
        """
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume_state:  # a write that was killed leaves its temporary file behind
                remove_temporaries(self.run_dir / CHECKPOINT_NAME)
        self._start(resume_state, env_state)
        can_checkpoint = hasattr(self.env.unwrapped, "state_dict")
        if self.logger is not None and not resume_state:
            self.logger.add_text("hyperparameters", hyperparameter_table(self._effective_config()), 0)
        image_every = self._image_every()
        bar = None
        if self.progress and self.is_main:
            bar = tqdm(total=self.total_steps, initial=self.step, desc=self.config.controller, unit="step")
        last_time = mark = time.perf_counter()
        while self.step < self.total_steps:
            start = time.perf_counter()
            metrics = self._one_step()
            self.step += 1
            now = time.perf_counter()
            self.wall_time += now - start
            if self.is_main:
                self._log(metrics, 1.0 / max(now - last_time, 1e-9))
                if self.step % image_every == 0 or self.step == self.total_steps:
                    self._log_architecture()
                    self._warn_on_collapse()
                if self.step == self.total_steps:
                    self._warn_on_parameter_free_cells()
            last_time = now
            if can_checkpoint and (self.step % self.config.checkpoint_every == 0 or self.step == self.total_steps):
                self.checkpoint()
            self._after_step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(reward=f"{metrics.get('reward_mean', metrics.get('reward', math.nan)):.4f}",
                                best=f"{self.best_reward:.4f}", entropy=f"{metrics.get('entropy', math.nan):.3f}")
            now = time.perf_counter()
            self.loop_time += now - mark
            mark = now
        if bar is not None:
            bar.close()
        return self.finish()

    def _judge(self, arch: np.ndarray) -> dict:
        """The table's verdict on ``arch``, logged under ``ground_truth/``. A partial (sampled)
        table trains a cell it lacks with its own recipe; those rows stay in the run directory."""
        self.judge.fill = self.fill or self.run_dir / judge.FILL_NAME
        try:
            verdict = self.judge.judge(arch)
        except ValueError as error:  # e.g. a partial table without this architecture
            return {"table": self.judge.table.name, "error": str(error)}
        if self.logger is not None:
            for key in ("test_accuracy", "test_regret", "test_regret_se", "percentile"):
                if math.isfinite(verdict[key]):
                    self.logger.add_scalar(f"ground_truth/{key}", verdict[key], self.step)
        return verdict

    def finish(self) -> dict:
        """Write ``result.json``, the genotype text and the cell diagrams."""
        arch = self.controller.derive()
        result: dict[str, Any] = {
            "controller": self.config.controller, "env": self.config.env, "seed": self.config.seed,
            "steps": self.step, "evaluations": self.evaluations, "wall_time_s": self.wall_time,
            "loop_time_s": self.loop_time, "setup_time_s": self.setup_time,
            "derived_arch": [int(a) for a in arch], "architecture": self.space.describe(arch),
            "genotype": None, "space": self.space.to_dict(),
            "best_reward": self.best_reward if math.isfinite(self.best_reward) else None,
            "best_arch": None if self.best_arch is None else [int(a) for a in self.best_arch],
            "config": asdict(self.config), "protocol_plan": self.plan.to_dict() if self.plan else None,
            **self._result_extras(),
        }
        quality = getattr(self.env.unwrapped, "credit_quality", None)
        result["credit_quality"] = (quality(arch if self.final_credit_check else None)
                                    if quality is not None else None)
        if self.logger is not None and result["credit_quality"]:
            for group in ("final", "pooled"):
                for key, value in result["credit_quality"].get(group, {}).items():
                    if value is not None:
                        self.logger.add_scalar(f"credit/{group}_{key}", value, self.step)
        score = getattr(self.env.unwrapped, "score", None)
        result["score"] = float(score(arch)) if score is not None else None
        if self.judge is not None:
            result["ground_truth"] = self._judge(arch)
        if isinstance(self.space, CellSpace):
            try:
                genotype = self.space.to_genotype(arch)
                # DARTS's Genotype as a dict; NAS-Bench-201's is its string.
                result["genotype"] = genotype._asdict() if hasattr(genotype, "_asdict") else genotype
            except ValueError:  # not in the two-inputs-per-node DARTS form
                pass
            for cell in self.space.cell_types:
                kind = self.space.name if cell == "cell" else cell  # nb201's one cell type is "cell"
                plot_cell(self.space, arch, cell, self.run_dir / f"{cell}.png", title=f"{kind} cell ({self.config.controller})")
        genotype_line = (repr(result["genotype"]) + "\n"
                         if result["genotype"] and result["genotype"] != result["architecture"] else "")
        (self.run_dir / "genotype.txt").write_text(genotype_line + result["architecture"] + "\n")
        jsonfile.write(self.run_dir / "result.json", result)
        if self.logger is not None:
            self.logger.add_text("search/genotype", f"```\n{result['architecture']}\n```", self.step)
            if result["score"] is not None:
                self.logger.add_scalar("charts/derived_score", result["score"], self.step)
            truth = result.get("ground_truth") or {}
            write_hparams(self.logger, {**self._effective_config(), "steps": self.total_steps,
                                        "image_every": self._image_every()},
                          {"hparams/derived_score": result["score"], "hparams/best_reward": result["best_reward"],
                           "hparams/evaluations": self.evaluations, "hparams/loop_time_s": self.loop_time,
                           **{f"ground_truth/{key}": truth.get(key)
                              for key in ("test_accuracy", "test_regret", "test_regret_se", "percentile")}},
                          self.step)
        return result

    def _effective_config(self) -> dict:
        """``_config_rows()`` with the number of steps the run takes (not ``None`` for the default)."""
        rows = dict(self._config_rows())
        for key in ("space", "dataset"):  # which task the run searched, given or by default
            value = getattr(getattr(self.env.unwrapped, "config", None), key, None)
            if value is not None:
                rows[key] = value
        how = ("from the protocol" if self.plan is not None else "from epochs" if self.config.epochs is not None
               else "default" if self.config.steps is None else None)
        rows["steps"] = self.total_steps if how is None else f"{self.total_steps} ({how})"
        if not self.config.image_every:
            rows["image_every"] = f"{self._image_every()} (about ten per run)"
        return rows

    def _image_every(self) -> int:
        return self.config.image_every or max(1, self.total_steps // 10)


def run_logged(search: Search, state: Optional[dict]) -> dict:
    """Run ``search`` (from ``state`` when resuming) with a TensorBoard writer on its run
    directory; a resumed run drops the events logged after its checkpoint.

    Returns:
        The search's result.
    """
    from torch.utils.tensorboard import SummaryWriter  # tensorboard: imported only to write

    writer = SummaryWriter(str(search.run_dir), purge_step=state["step"] + 1 if state else None)
    search.logger = writer
    try:
        return search.run(resume_state=state)
    finally:
        writer.close()


def resume_state(run_dir: str | Path) -> dict:
    """The checkpointed state of ``run_dir``; ``CheckpointError`` when missing or corrupt."""
    return load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
