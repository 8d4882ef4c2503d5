"""Fidelity and agreement on real data: the shipped emoji classifier, FD between real halves vs shapes and noise,
agreement on real images, the stratified selection, the FID Inception network (random weights) and its errors,
and ``openimagen eval --suite emoji|folder`` end to end on a tiny random cascade (its images are noise: only
structure, floors and reproducibility are checked), plus one-line errors for bad input."""
import json
import random
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from openimagen.errors import InvalidArgumentError, ModelLoadError
from openimagen.eval.emoji_classifier import CONFIG_PATH, WEIGHTS_PATH, embed, load_classifier
from openimagen.eval.fidelity import fidelity_metrics, real_tensor
from openimagen.eval.frechet import frechet_distance_features
from openimagen.eval.real_data import load_real_set, stratified
from tests.eval.conftest import run_cli

N_EMOJI = 240          # first emoji of emoji-test.txt: Smileys & Emotion and the start of People & Body




@pytest.fixture(scope="module")
def emoji_dir(tmp_path_factory):
    from openimagen.data.emojis import NOTO_EMOJI_FONT, build_emoji

    if not NOTO_EMOJI_FONT.is_file():
        pytest.skip("fonts-noto-color-emoji is not installed")
    out = tmp_path_factory.mktemp("fidelity") / "emoji64"
    build_emoji(out, size=64, workers=1, limit=N_EMOJI)
    return out


@pytest.fixture(scope="module")
def real(emoji_dir):
    real = load_real_set("emoji", emoji_dir)
    return real, embed(load_classifier(), real_tensor(real, range(len(real.records)), 64))




def test_shipped_classifier_has_the_documented_classes():
    from openimagen.data.emojis import read_emoji_test

    assert WEIGHTS_PATH.stat().st_size + CONFIG_PATH.stat().st_size < 1_000_000
    cfg = load_classifier().config
    entries = read_emoji_test()
    assert len(cfg.groups) == 9 and len(cfg.subgroups) == 99 and cfg.input_size == 32 and cfg.feature_dim == 128
    assert set(cfg.groups) == {e.group for e in entries} and set(cfg.subgroups) <= {e.subgroup for e in entries}
    assert cfg.subgroups[0] == "face-smiling" and cfg.subgroup_group["country-flag"] == "Flags"
    assert cfg.trained["command"].startswith("python -m openimagen.eval.train_emoji_classifier")
    assert cfg.trained["accuracy_clean"]["subgroup"] > 0.6 and cfg.trained["accuracy_clean"]["group"] > 0.8
    f = load_classifier().features(torch.zeros(2, 3, 64, 64))
    assert f.shape == (2, 128)


def test_real_halves_are_far_closer_than_shapes_or_noise(real):
    real_set, e = real
    f = e["features"]
    a, b = list(real_set.reference), list(real_set.held)
    n = min(len(a), len(b))
    g = torch.Generator().manual_seed(0)
    noise = embed(load_classifier(), torch.rand(n, 3, 64, 64, generator=g) * 2 - 1)["features"]
    from openimagen.eval.prompts import load_split
    from openimagen.eval.render import render_case

    from openimagen.data.preprocess import to_tensor

    rng = random.Random(0)
    cases = (load_split("seen") * 4)[:n]
    shapes = embed(load_classifier(), torch.stack([to_tensor(render_case(c, 64, rng)[0]) for c in cases]))["features"]
    rr = frechet_distance_features(f[b[:n]], f[a[:n]])
    assert rr < 0.2 * frechet_distance_features(shapes, f[a[:n]])
    assert rr < 0.2 * frechet_distance_features(noise, f[a[:n]])
    # two different real samples of the same size give floors of the same order
    half = n // 2
    assert frechet_distance_features(f[b[:half]], f[a]) == pytest.approx(
        frechet_distance_features(f[b[half:2 * half]], f[a]), rel=0.5)


def test_agreement_on_real_images_is_far_above_chance(real):
    real_set, e = real
    labels = [(r.labels["group"], r.labels["subgroup"]) for r in real_set.records]
    m = fidelity_metrics(e, e, e, e, labels, labels, load_classifier())
    sub, grp = m["agreement"]["subgroup"], m["agreement"]["group"]
    # measured with the shipped weights on these 240 emoji (18 subgroups, 2 groups): subgroup 0.63 (most common
    # subgroup 0.28, uniform guess 0.06), group 0.88 (most common 0.69)
    assert sub["generated"] == sub["real"] and sub["prompt_classes"] == 18
    assert sub["real"] > 0.5 and sub["real"] > 2 * sub["chance"] and sub["real"] > 8 / sub["prompt_classes"]
    assert grp["real"] > 0.8 and grp["real"] > grp["chance"] + 0.1
    assert m["frechet"]["generated"] == pytest.approx(0.0, abs=1e-6)


def test_stratified_selection_is_proportional_and_deterministic():
    strata = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5
    pick = stratified(range(100), lambda i: strata[i], 20)
    assert pick == stratified(range(100), lambda i: strata[i], 20) and len(pick) == 20
    assert [sum(strata[i] == s for i in pick) for s in "abcd"] == [10, 6, 3, 1]
    assert pick == sorted(pick) and stratified(range(5), lambda i: "x", 99) == list(range(5))


@pytest.fixture(scope="module")
def fid_state():
    from openimagen.eval.inception import FIDInceptionV3

    torch.manual_seed(0)
    return FIDInceptionV3().state_dict()               # with num_batches_tracked, as a torch checkpoint has


def test_inception_random_weights_round_trip(tmp_path, fid_state):
    from openimagen.eval.inception import FIDInceptionV3, inception_features, load_inception

    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(fid_state, path)
    net = load_inception(path)
    ref = FIDInceptionV3()
    ref.load_state_dict(fid_state)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    f = inception_features(net, x)
    assert f.shape == (2, 2048) and torch.allclose(f, inception_features(ref.eval(), x), atol=1e-5)


def test_inception_wrong_shape_file_is_refused(tmp_path, fid_state):
    from openimagen.eval.inception import load_inception

    path = tmp_path / "other.pth"
    torch.save({**fid_state, "fc.weight": torch.zeros(1000, 2048)}, path)
    match = re.escape("wrong shape: fc.weight (1000, 2048) (expected (1008, 2048))")
    with pytest.raises(ModelLoadError, match=match) as e:
        load_inception(path)
    assert "pt_inception-2015-12-05-6726825d.pth" in str(e.value)


@pytest.mark.parametrize("change, match", [
    (lambda s: s.pop("Mixed_7c.branch_pool.conv.weight"), "1 tensors missing"),
    (lambda s: s.__setitem__("AuxLogits.fc.weight", torch.zeros(1008, 768)), "1 unexpected"),
])
def test_inception_wrong_keys_are_refused(fid_state, change, match):
    from openimagen.eval.inception import check_state_dict

    state = dict(fid_state)
    change(state)
    with pytest.raises(ModelLoadError, match=match):
        check_state_dict(state, "weights.pth")


def test_inception_missing_or_unreadable_file(tmp_path):
    from openimagen.eval.inception import load_inception

    with pytest.raises(ModelLoadError, match="no such file.*pytorch-fid"):
        load_inception(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot be read as a torch state dict"):
        load_inception(tmp_path / "junk.pth")


@pytest.fixture(scope="module")
def emoji_run(model, emoji_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity") / "run"
    code = _main("eval", "--suite", "emoji", "--model", model, "--data", emoji_dir, "--limit", "6",
                 "--images-per-prompt", "2", "--steps", "2", "--seed", "3", "--out", out, "--no-progress")
    assert code == 0
    return out


def _main(*argv):
    import argparse

    from openimagen.cli.eval import add_eval_parser

    parser = argparse.ArgumentParser(prog="openimagen")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_emoji_suite_end_to_end(emoji_run, emoji_dir):
    res = json.loads((emoji_run / "results.json").read_text())
    m = res["metrics"]
    assert m["frechet"]["generated_images"] == m["frechet"]["floor_images"] == 12 == len(res["samples"])
    assert m["frechet"]["generated"] > m["frechet"]["real_floor"] > 0          # noise is far from real emoji
    assert m["frechet"]["reference_images"] == N_EMOJI // 2 + N_EMOJI % 2 or m["frechet"]["reference_images"] > 100
    sub = m["agreement"]["subgroup"]
    assert 0 <= sub["generated"] <= 1 and sub["real"] >= 0.5 and res["settings"]["prompts"] == 6
    assert set(res["headline"]) >= {"frechet", "frechet_floor", "agreement", "agreement_group"}
    s = res["samples"][1]
    assert s["k"] == 1 and s["seed"] == 3 + 1 and s["subgroup"] and s["pred_subgroup"]
    assert Image.open(emoji_run / s["image"]).size == (32, 32)
    md = (emoji_run / "report.md").read_text()
    assert "real-vs-real floor" in md and "training images" in md and "--inception" in md
    assert Image.open(emoji_run / "grid.png").size[0] > 128


def test_emoji_suite_is_reproducible(emoji_run, model, emoji_dir, tmp_path):
    out = tmp_path / "again"
    assert _main("eval", "--suite", "emoji", "--model", model, "--data", emoji_dir, "--limit", "6",
                 "--images-per-prompt", "2", "--steps", "2", "--seed", "3", "--batch-size", "1", "--out", out,
                 "--no-progress") == 0
    a, b = (json.loads((d / "results.json").read_text()) for d in (emoji_run, out))
    # another batch size gives the same images up to the batched mode's one 8-bit step (README "Reproducibility":
    # batched matmuls may round differently on some CPUs), so the metrics agree to well within their noise
    flat_a, flat_b = _flatten(a["metrics"]), _flatten(b["metrics"])
    assert flat_a.keys() == flat_b.keys()
    for key, value in flat_a.items():
        assert flat_b[key] == (pytest.approx(value, rel=1e-3, abs=1e-6) if isinstance(value, float) else value), key
    first, again = Image.open(emoji_run / a["samples"][5]["image"]), Image.open(out / b["samples"][5]["image"])
    diff = np.abs(np.asarray(first, dtype=np.int16) - np.asarray(again, dtype=np.int16))
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_folder_suite_without_labels(model, emoji_dir, tmp_path, capsys):
    folder = tmp_path / "plain"
    folder.mkdir()
    for p in sorted((emoji_dir / "images").glob("*.png"))[:12]:
        shutil.copy(p, folder / p.name)
        shutil.copy(p.with_suffix(".txt"), folder / p.with_suffix(".txt").name)
    code, out, err = run_cli(capsys, "eval", "--suite", "folder", "--model", model, "--data", folder, "--limit", "3",
                         "--images-per-prompt", "1", "--steps", "2", "--out", tmp_path / "o", "--no-progress")
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert "agreement" not in res["metrics"] and res["metrics"]["frechet"]["generated_images"] == 3
    assert "no labels.subgroup" in (tmp_path / "o" / "report.md").read_text()


def test_bad_inputs(model, emoji_dir, tmp_path, capsys):
    (tmp_path / "nocaps").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "nocaps" / "a.png")
    cases = [
        (["--suite", "drawbench", "--model", model], "unknown suite 'drawbench'; valid: emoji, folder, shapes"),
        (["--suite", "emoji", "--model", model, "--data", tmp_path / "missing"],
         "openimagen data emoji"),
        (["--suite", "emoji", "--model", model, "--data", emoji_dir, "--limit", "0"], "--limit must be >= 1"),
        (["--suite", "emoji", "--model", model, "--data", emoji_dir, "--images-per-prompt", "0"],
         "--images-per-prompt must be >= 1"),
        (["--suite", "emoji", "--model", tmp_path, "--data", emoji_dir, "--limit", "1"], "error: "),
        (["--suite", "folder", "--model", model, "--data", tmp_path / "nocaps"], "no captioned images"),
        (["--suite", "folder", "--model", model], "--suite folder needs --data"),
        (["--suite", "emoji", "--model", model, "--data", emoji_dir, "--inception", tmp_path / "x.pth"],
         "pt_inception-2015-12-05-6726825d.pth"),
        (["--suite", "emoji", "--data", emoji_dir], "--model"),
    ]
    for argv, match in cases:
        code, _, err = run_cli(capsys, "eval", *argv, "--out", tmp_path / "o", "--no-progress")
        assert code == 2 and match in err and err.startswith("error: ") and err.count("\n") == 1, (argv, err)


def test_selection_errors_without_cli(tmp_path):
    with pytest.raises(InvalidArgumentError, match="openimagen data emoji"):
        load_real_set("emoji", tmp_path / "none")


def test_emoji_suite_in_a_steps_sweep(model, emoji_dir, tmp_path):
    out = tmp_path / "sweep"
    assert _main("eval", "--suite", "emoji", "--model", model, "--data", emoji_dir, "--limit", "3",
                 "--images-per-prompt", "1", "--sweep-steps", "1,2", "--samplers", "ddim", "--out", out,
                 "--no-progress") == 0
    points = json.loads((out / "sweep.json").read_text())["points"]
    assert [p["steps"] for p in points] == [1, 2]
    assert all(p["metrics"]["frechet"] > 0 and 0 <= p["metrics"]["agreement"] <= 1 for p in points)
    assert (out / "ddim-2" / "report.md").is_file()
