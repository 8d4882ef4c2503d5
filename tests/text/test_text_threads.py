"""Text encoders are safe to call from several threads: every concurrent result equals the serial one.

Without the lock in ``HFTextEncoder.encode``, threads race on the fast tokenizer's padding and truncation
settings and these tests fail ("Already borrowed", "Unable to create tensor", or different tokens).
Python switches threads every 5 ms by default, longer than one tiny-model call, so the tests switch every
10 us to make a race show up within a few calls.
"""
import random
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from openimagen.text import CachedTextEncoder
from tests.text.tiny_models import WORDS

THREADS, ROUNDS = 8, 10


@pytest.fixture
def fast_thread_switching():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def prompt_lists(seed: int = 0) -> list[list[str]]:
    """THREADS lists of 1-24 prompts, no prompt in two lists; some longer than 12 tokens (truncated)."""
    rng, seen, lists = random.Random(seed), set(), []
    for _ in range(THREADS):
        prompts = []
        while len(prompts) < rng.randint(1, 24):
            p = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 16)))
            if p not in seen:
                seen.add(p)
                prompts.append(p)
        lists.append(prompts)
    return lists


def encode_concurrently(encoder, lists: list[list[str]]) -> list[list]:
    """Thread i encodes ``lists[i]`` ROUNDS times, all threads at once; a thread's exception is re-raised."""
    start = threading.Barrier(len(lists))

    def work(i):
        start.wait()
        return [encoder.encode(lists[i]) for _ in range(ROUNDS)]

    with ThreadPoolExecutor(len(lists)) as pool:
        return list(pool.map(work, range(len(lists))))


def assert_all_equal(serial: list, concurrent: list[list]) -> None:
    for want, got in zip(serial, concurrent, strict=True):
        for emb in got:
            assert torch.equal(emb.tokens, want.tokens) and torch.equal(emb.mask, want.mask)


@pytest.mark.filterwarnings("ignore:.*were truncated")
@pytest.mark.parametrize("name", ["bert", "t5"])
def test_concurrent_encodes_equal_serial_ones(make_encoder, name, fast_thread_switching):
    encoder, lists = make_encoder(name, 12), prompt_lists()
    serial = [encoder.encode(p) for p in lists]
    assert_all_equal(serial, encode_concurrently(encoder, lists))


def test_concurrent_cached_encodes_equal_serial_ones(make_encoder, tmp_path, fast_thread_switching):
    """Concurrent misses of different prompts: each thread encodes and writes its own; counters stay exact."""
    lists = prompt_lists(seed=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*were truncated")
        serial = [CachedTextEncoder(make_encoder("t5", 12), tmp_path / "serial").encode(p) for p in lists]
        cached = CachedTextEncoder(make_encoder("t5", 12), tmp_path / "concurrent")
        assert_all_equal(serial, encode_concurrently(cached, lists))
    unique = sum(len(p) for p in lists)
    assert (cached.misses, cached.hits) == (unique, (ROUNDS - 1) * unique)  # each list misses in round 1 only
    assert_all_equal(serial, [[CachedTextEncoder(cached.encoder, tmp_path / "concurrent").encode(p)]
                              for p in lists])                               # what was written is complete
