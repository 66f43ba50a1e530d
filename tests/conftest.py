import torch

# The models under test are tiny: a second intra-op thread only adds synchronisation, and on
# two shared cores it thrashes (a 0.1 s supernet step took 8 s). One thread for the session;
# subprocesses started by the CLI tests get OMP_NUM_THREADS=1 the same way.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory):
    """Manifest path of a complete NAS-Bench-1D table of a 16-encoding space ('tiny': one
    node, ops none/skip_connect), trained for real on 64 digits (1 epoch, 2 seeds, no Ray)."""
    from nasgen.nb1d import Recipe, build, pack
    from nasgen.searchspace import CellSearchSpace

    space = CellSearchSpace("tiny", ("none", "skip_connect"), n_nodes=1)
    recipe = Recipe(train_size=64, val_size=64, test_size=64, epochs=1, batch_size=32, C=2)
    out = tmp_path_factory.mktemp("tiny-table")
    build(space, "digits", [0, 1], recipe, out, local=True, progress=False)
    return pack(out, "tiny")
