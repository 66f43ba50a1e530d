import torch

# The models under test are tiny: a second intra-op thread only adds synchronisation, and on
# two shared cores it thrashes (a 0.1 s supernet step took 8 s). One thread for the session;
# subprocesses started by the CLI tests get OMP_NUM_THREADS=1 the same way.
torch.set_num_threads(1)
