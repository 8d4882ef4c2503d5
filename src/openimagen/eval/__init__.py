"""Evaluation: text alignment (GenEval-style, on the shapes vocabulary), fidelity (Fréchet distances) and prompt
agreement on real data, speed.

==============================  ==================================================================
module                          what it holds
==============================  ==================================================================
:mod:`.prompts`                 the versioned prompt sets (JSON, shipped) and their generator
:mod:`.segment`                 colour segmentation and connected components (numpy only)
:mod:`.shapes_scorer`           :func:`detect` objects, :func:`score` an image against a prompt
:mod:`.shape_classifier`        the fitted shape classifier (parameters: ``shape_classifier.json``)
:mod:`.fit_shape_classifier`    ``python -m`` it to refit those parameters
:mod:`.render`                  builder renders of prompt cases, degradations, wrong prompts
:mod:`.validate_scorer`         ``python -m`` it for the scorer's agreement table
:mod:`.run`                     generate + score a prompt suite, or score a folder; summaries
:mod:`.report`                  ``results.json``, ``report.md``, ``grid.png``
:mod:`.frechet`                 Fréchet distance between Gaussian feature statistics
:mod:`.emoji_classifier`        the emoji group/subgroup CNN (weights: ``emoji_classifier.safetensors``)
:mod:`.train_emoji_classifier`  ``python -m`` it to retrain those weights on an emoji build
:mod:`.inception`               the FID Inception-v3 network (pytorch-fid weights file) for standard FID
:mod:`.real_data`               emoji/folder suites: real records, stratified halves and prompts
:mod:`.fidelity`                FD vs its real-vs-real floor and prompt agreement on generated images
:mod:`.fidelity_report`         their ``results.json``, ``report.md``, ``grid.png``
==============================  ==================================================================

The CLI is ``openimagen eval`` (:mod:`openimagen.cli.eval`); docs/EVALUATION.md explains every number.
"""
from .frechet import frechet_distance, frechet_distance_features, gaussian_stats
from .prompts import CATEGORIES, PromptCase, load_prompt_set, load_split, make_prompt_set
from .run import EvalSettings, evaluate_pipeline, prompt_sets, score_folder, summarize
from .shapes_scorer import check, detect, score

__all__ = [
    "CATEGORIES", "EvalSettings", "PromptCase", "check", "detect", "evaluate_pipeline", "frechet_distance",
    "frechet_distance_features", "gaussian_stats", "load_prompt_set", "load_split", "make_prompt_set",
    "prompt_sets", "score", "score_folder", "summarize",
]
