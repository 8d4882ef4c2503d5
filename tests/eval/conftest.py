"""Shared fixtures of the evaluation tests: a CLI runner, one torch thread, a tiny saved model."""
import argparse

import pytest
import torch

from openimagen.cli.bench import add_bench_parser
from openimagen.cli.eval import add_eval_parser
from openimagen.cli.values import run_command
from tests.pipeline.fixtures import tiny_pipeline


def run_cli(capsys, *argv):
    """Parse and run ``openimagen eval|bench ...`` like ``openimagen.cli.main.main`` does (errors: one line on
    stderr, exit code 2); returns (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="openimagen")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_bench_parser(sub)
    args = parser.parse_args([str(a) for a in argv])
    code = run_command(args.func, args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny per-image network calls: on a shared 2-core machine two OpenMP threads wait on each other (measured:
    33 s vs 0.6 s for 12 images), so the evaluation tests run torch on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_pipeline().save_pretrained(tmp_path_factory.mktemp("eval") / "model")
