"""The real images of a fidelity suite: which data set, its deterministic halves, and the prompts drawn from it.

Suites (``openimagen eval --suite``):

* ``emoji``: a built emoji data set (default ``data/emoji64``; ``DIR/manifest.jsonl`` for its labels);
* ``folder``: any captioned folder or ``.jsonl``/``.csv`` manifest (:mod:`openimagen.data.formats`); a builder's
  output folder is read through its ``manifest.jsonl`` so that labels come along.

Design (so that a Fréchet distance has a fair real-vs-real floor, docs/EVALUATION.md):

1. the records are split into halves A (the *reference*) and B, stratified by ``labels.subgroup``: inside each
   subgroup, in data-set order, items alternate A, B, A, ...;
2. the prompts are a subgroup-stratified subset of B (:func:`stratified`: every subgroup gets its share of the
   prompts by the largest-remainder rule, items evenly spaced within it), each prompt being that record's
   primary caption;
3. the floor's real sample is the stratified subset of B with as many images as are generated, so generated
   and real samples have the same size and the same subgroup mix, and both are compared with A.

Everything is deterministic (no seed): a ``--limit`` run and a full run use the same rule.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from openimagen.errors import InvalidArgumentError

DEFAULT_EMOJI_DATA = Path("data/emoji64")
BUILD_EMOJI = "openimagen data emoji {dir} --size 64"


@dataclass(frozen=True)
class RealSet:
    """The records of a suite and the index lists the evaluation uses (indices into ``records``)."""

    source: str            # the data set's path
    records: tuple         # of openimagen.data.formats.Record
    reference: tuple       # half A
    held: tuple            # half B
    has_subgroups: bool    # every record has labels.subgroup

    def subgroup(self, i: int) -> Optional[str]:
        return self.records[i].labels.get("subgroup")


def load_records(suite: str, data) -> tuple:
    """``(source, records)`` of an ``emoji`` or ``folder`` suite, with a clear error for missing data."""
    from openimagen.data.formats import load_records as read_any
    from openimagen.data.formats import read_manifest
    from openimagen.data.preprocess import SkipReport

    report = SkipReport()
    if suite == "emoji":
        path = Path(data) if data is not None else DEFAULT_EMOJI_DATA
        manifest = path / "manifest.jsonl" if path.suffix.lower() != ".jsonl" else path
        if not manifest.is_file():
            raise InvalidArgumentError(f"emoji data {path} not found (no {manifest.name}); build it with "
                                       f"`{BUILD_EMOJI.format(dir=path)}` or pass --data DIR")
        records = read_manifest(manifest, report)
        if not any("subgroup" in r.labels for r in records):
            raise InvalidArgumentError(f"{manifest} has no labels.subgroup: not an emoji build; build one with "
                                       f"`{BUILD_EMOJI.format(dir=DEFAULT_EMOJI_DATA)}`")
        return str(path), records
    if data is None:
        raise InvalidArgumentError("--suite folder needs --data PATH: a folder of images with same-stem .txt "
                                   "captions, or a .jsonl/.csv manifest")
    path = Path(data)
    if not path.exists():
        raise InvalidArgumentError(f"--data {path} does not exist")
    if path.is_dir() and (path / "manifest.jsonl").is_file():
        records = read_manifest(path / "manifest.jsonl", report)
    else:
        records = read_any(path, report)
    if not records:
        why = f" ({report.summary()})" if report.skipped else ""
        raise InvalidArgumentError(f"no captioned images in {path}{why}: every image needs a caption (a same-stem "
                                   ".txt file in a folder, or a caption column in a manifest)")
    return str(path), records


def stratified(indices, strata, m: int) -> list:
    """``m`` of ``indices`` (at most all), stratified: stratum s (in order of first appearance) with n_s items
    gets floor(m n_s / N) plus one for the largest remainders (ties: earlier strata first); within a stratum
    the picks are evenly spaced, item floor((j + 1/2) n_s / m_s) for j < m_s. Returned in input order."""
    indices = list(indices)
    m = min(m, len(indices))
    groups: dict = {}
    for i in indices:
        groups.setdefault(strata(i), []).append(i)
    n = len(indices)
    quotas = {s: m * len(v) // n for s, v in groups.items()}
    rest = m - sum(quotas.values())
    by_remainder = sorted(groups, key=lambda s: -(m * len(groups[s]) % n))  # stable: ties keep order
    for s in by_remainder[:rest]:
        quotas[s] += 1
    picked = set()
    for s, items in groups.items():
        k = quotas[s]
        picked.update(items[int((j + 0.5) * len(items) / k)] for j in range(k))
    return [i for i in indices if i in picked]


def load_real_set(suite: str, data=None) -> RealSet:
    """The suite's records split into stratified halves (module docstring, step 1)."""
    source, records = load_records(suite, data)
    if len(records) < 4:
        raise InvalidArgumentError(f"{source} has {len(records)} captioned images; a Fréchet distance with a "
                                   "real-vs-real floor needs at least 4")
    strata = lambda i: records[i].labels.get("subgroup", "")  # noqa: E731
    seen: dict = {}
    reference, held = [], []
    for i in range(len(records)):
        s = strata(i)
        (reference if seen.get(s, 0) % 2 == 0 else held).append(i)
        seen[s] = seen.get(s, 0) + 1
    return RealSet(source, tuple(records), tuple(reference), tuple(held),
                   all("subgroup" in r.labels for r in records))


def prompt_indices(real: RealSet, limit: int) -> list:
    """The prompts' record indices: ``limit`` stratified from half B (module docstring, step 2)."""
    return stratified(real.held, lambda i: real.subgroup(i) or "", limit)


def floor_indices(real: RealSet, n: int) -> list:
    """The real-vs-real floor's sample: ``n`` (at most all of half B) stratified from half B (step 3)."""
    return stratified(real.held, lambda i: real.subgroup(i) or "", n)
