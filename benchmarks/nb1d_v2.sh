#!/usr/bin/env bash
# The NAS-Bench-1D v2 build: recipe n16k_noise2 of the recipe pilots (16,000 training signals,
# both MNIST-1D noise scales doubled, the shipped recipe otherwise), every distinct nb201 cell
# with seed 0, 2,000 of them drawn at random with seeds 0 and 1 (trained first, each cell's two
# seeds in a row, so the build cut anywhere is a random sample with both seeds). A good cell,
# whose seed 0 ends above 87.955 % test accuracy, gets seeds 0-3, right after its first: four
# seeds per good cell is what the good half's reliability target needs (nb1d_v2_third_seed.md).
# 87.955 % is the median of seed 0 over the first 600 cells of the random subset, fixed
# before any extra seed trained (so the third-seed pilot's 300 seed-2 rows are planned rows:
# `nasgen bench merge benchmarks/results/nb1d-v2-seed2 benchmarks/results/nb1d-v2-build`).
#
#   bash benchmarks/nb1d_v2.sh --local --threads 1          # one CPU core; resumes the committed rows
#   bash benchmarks/nb1d_v2.sh --local --device cuda --archs-per-task 256   # a GPU
#   bash benchmarks/nb1d_v2.sh --num-cpus 16                # Ray, or --address HOST:PORT
#
# Extra arguments go to `nasgen bench build` (a later --out wins). The rows stream to
# benchmarks/results/nb1d-v2-build/rows.jsonl, committed as they come so any machine resumes.
exec "${PYTHON:-python}" -m nasgen bench build --space nb201 --dataset mnist1d --seeds 0,1 \
    --recipe train_size=16000 'data_options={"iid_noise_scale": 0.04, "corr_noise_scale": 0.5}' \
    --reliability-archs 2000 --good-seeds 0,1,2,3 --good-above 0.87955 \
    --name nb201-mnist1d-v2 --out benchmarks/results/nb1d-v2-build "$@"
