import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Under pytest-xdist (`make test` runs `-n auto`: one worker per core), each worker gets its share of the cores for torch's intra-op threads,
# and the CLI subprocesses the tests start inherit it: two workers with two OpenMP threads each on a 2-core machine
# wait on each other (small convolutions run up to 10x slower oversubscribed).
if os.environ.get("PYTEST_XDIST_WORKER"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_share)
    import torch

    torch.set_num_threads(_share)
