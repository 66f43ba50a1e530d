"""What each registered environment offers a search, asked of its class before anything is made.

``nasgen search`` validates a run with these answers (datasets, whether a controller can
search the env at all), so a run that cannot work exits with one line instead of failing
after its run directory exists.
"""

from __future__ import annotations

from typing import Any, Optional

from nasgen import controllers, envs
from nasgen.search import env_class, env_parameters

#: What a gradient controller calls on ``env.unwrapped`` besides ``model``/``weight_optimizer``
#: (instance attributes, so only the methods can be asked of the class).
GRADIENT_INTERFACE = ("loss_fn", "next_train_batch", "next_val_batch")


def env_datasets(env_id: str) -> Optional[list[str]]:
    """The dataset names env ``env_id`` accepts, or None when it takes no ``dataset``."""
    if "dataset" not in env_parameters(env_id):
        return None
    names = getattr(env_class(env_id), "dataset_names", None)
    return list(names()) if names is not None else None


def differentiable(env_id: str) -> bool:
    """True when gradient controllers can drive the env's model (``step(env.unwrapped)``)."""
    cls = env_class(env_id)
    return all(callable(getattr(cls, name, None)) for name in GRADIENT_INTERFACE)


def incompatibility(env_id: str, controller: str, env_kwargs: Optional[dict[str, Any]] = None) -> Optional[str]:
    """Why ``controller`` cannot search ``env_id`` (with ``env_kwargs``), or None when it can.

    Args:
        env_id: a registered env id.
        controller: a registered controller name.
        env_kwargs: the user's keyword arguments of the env.

    Returns:
        One line naming the problem and what would work, or None.
    """
    spec = controllers.get(controller)
    if spec.kind == "gradient" and not differentiable(env_id):
        usable = [e for e in envs.env_ids() if differentiable(e)]
        black_box = [n for n in controllers.names()
                     if controllers.get(n).kind != "gradient" and incompatibility(env_id, n) is None]
        return (f"gradient controller {controller!r} needs an env with a differentiable model; {env_id} has "
                f"none. Use it with {', '.join(usable)}, or search {env_id} with a black-box controller: "
                f"{', '.join(black_box)}")
    accepted = env_parameters(env_id)
    modes = tuple(getattr(env_class(env_id), "credit_modes", ()))
    wanted = dict(spec.env_requirements)
    wanted.update({k: v for k, v in (env_kwargs or {}).items() if k in spec.env_requirements or k == "credit"})
    credit = wanted.get("credit")
    if credit is not None and ("credit" not in accepted or credit not in modes):
        if "credit" in spec.env_requirements:
            return (f"controller {controller!r} needs per-edge credit, which {env_id} cannot give"
                    + (f" (credit modes: {', '.join(modes)})" if modes else "")
                    + "; use another controller, or an env with credit: "
                    + ", ".join(e for e in envs.env_ids() if getattr(env_class(e), "credit_modes", ())))
        return (f"--env-kwargs credit={credit}: {env_id} takes "
                + (f"credit in {', '.join(modes)} only" if modes else "no credit"))
    return None
