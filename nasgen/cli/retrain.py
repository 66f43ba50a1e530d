"""``nasgen retrain RUN_DIR | GENOTYPE.json``: flags -> ``RetrainConfig`` -> ``retrain``."""

from __future__ import annotations

import argparse
import dataclasses

from nasgen.retrain import RetrainConfig, prepare

from . import args as a
from .args import UsageError

FLAGS = tuple(f.name for f in dataclasses.fields(RetrainConfig))


def add_retrain_parser(subparsers) -> argparse.ArgumentParser:
    retrain_ = subparsers.add_parser("retrain", help="train a found architecture from scratch and report test accuracy")
    retrain_.add_argument("source", metavar="RUN_DIR|GENOTYPE.json",
                          help="a search run directory, a genotype JSON file, or a text file holding a "
                               "NAS-Bench-201 string (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
    for name in FLAGS:
        a.config_flag(retrain_, RetrainConfig, name)
    retrain_.add_argument("--out", type=a.name, help="output folder (default: RUN_DIR/retrain)")
    retrain_.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_threads_argument(retrain_)
    retrain_.set_defaults(func=cmd_retrain)
    return retrain_


def cmd_retrain(args: argparse.Namespace) -> int:
    try:
        config = RetrainConfig(**a.given(args, FLAGS))
        job = prepare(args.source, config, args.out)
    except ValueError as error:
        raise UsageError(str(error)) from None
    record = job.run(progress=not args.no_progress)
    print(f"test accuracy: {record['test_accuracy']:.4f}  (val {record['val_accuracy']:.4f}, "
          f"{record['parameters']} parameters, {config.epochs} epochs on {record['dataset']})")
    print(f"results: {record['out']}/retrain.json  (TensorBoard: tensorboard --logdir {record['out']})")
    return 0
