"""Search spaces, ops, the shared-weight supernet, data and stand-alone retraining."""

from .credit_estimators import (CREDIT_MODES, Credit, CreditCheck, agreement, check_credit, compute_credit, exact_credit,
                     figures_of, hybrid_credit, subset_corrected, taylor_credit)
from .data import (DATASETS, BatchStream, DataError, DataNotFoundError, Dataset, MNIST1DOptions, Split,
                   check_dataset_name, dataset_from, dataset_names, dataset_options, load_dataset)
from .network import (Network, TrainConfig, TrainResult, augment_batch, evaluate_split, fit, recalibrate_batchnorm,
                      train_network)
from .ops import DARTS_OPS, OPS, ZERO_OP, OpSpec, make_op
from .plot import plot_cell, plot_genotype, plot_op_probabilities
from .registry import PluginError
from .space import (DARTS_V2, NB201_OPS, PRESETS, CellSearchSpace, CellSpace, Genotype, NB201SearchSpace, SearchSpace,
                    check_space_name, from_dict, get, names)
from .supernet import Evaluation, Supernet, evaluate

__all__ = [
    "CREDIT_MODES", "Credit", "CreditCheck", "agreement", "check_credit", "compute_credit", "exact_credit",
    "figures_of", "hybrid_credit", "subset_corrected", "taylor_credit",
    "DATASETS", "BatchStream", "DataError", "DataNotFoundError", "Dataset", "MNIST1DOptions", "Split",
    "check_dataset_name", "dataset_from", "dataset_names", "dataset_options", "load_dataset",
    "Network", "TrainConfig", "TrainResult", "augment_batch", "evaluate_split", "fit", "recalibrate_batchnorm",
    "train_network",
    "DARTS_OPS", "OPS", "ZERO_OP", "OpSpec", "make_op",
    "plot_cell", "plot_genotype", "plot_op_probabilities",
    "DARTS_V2", "NB201_OPS", "CellSearchSpace", "CellSpace", "Genotype", "NB201SearchSpace", "SearchSpace",
    "PRESETS", "PluginError", "check_space_name", "from_dict", "get", "names",
    "Evaluation", "Supernet", "evaluate",
]
