"""Class images made by the base model itself, for DreamBooth's prior preservation (Ruiz et al. 2023, Sec. 3.3).

Fine-tuning on a handful of subject images drifts the model's idea of the subject's class ("language drift") and
narrows its outputs. DreamBooth keeps the prior by training, beside the subject images, on images that the frozen
model generates from plain class prompts; here those images become an ordinary data folder, captioned with their
prompts, that ``openimagen data mix`` mixes with the subject set (the mix's repeat counts set the prior's weight,
DreamBooth's lambda):

    openimagen data prior data/prior --prompt "a red circle" --prompt "a blue square" --num-images 4
    openimagen data mix data/dreambooth data/my_subject:2 data/prior
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from openimagen.data.writer import BuildResult, BuildWriter
from openimagen.errors import InvalidArgumentError, is_int_at_least


def build_prior(out: Union[str, os.PathLike], pipe, prompts: Sequence[str], images_per_prompt: int = 1,
                seed: int = 0, stage: Optional[int] = 0, batch: int = 8) -> BuildResult:
    """Generate ``images_per_prompt`` images of each prompt with ``pipe`` (its base stage alone by default: the
    resolution the base stage trains at; ``stage=None`` runs the whole cascade) and write them, captioned with
    their prompt, to the data folder ``out``. Image k uses seed ``seed + k``."""
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise InvalidArgumentError("prior images need at least one non-empty class prompt")
    if not is_int_at_least(images_per_prompt, 1):
        raise InvalidArgumentError(f"images per prompt must be an integer >= 1, got {images_per_prompt!r}")
    args = {"prompts": prompts, "images_per_prompt": images_per_prompt, "seed": seed, "stage": stage,
            "model_hash": pipe.model_hash}
    with BuildWriter(out, builder="prior", args=args) as w:
        k = 0
        for start in range(0, len(prompts), batch):
            chunk = prompts[start:start + batch]
            res = pipe(chunk, num_images_per_prompt=images_per_prompt, seed=seed + k, stop_at_stage=stage)
            for image, prompt, s in zip(res.images, res.request.image_prompts, res.seeds):
                w.add(f"{k:06d}", image, [prompt], {"prior": True, "seed": s, "model_hash": pipe.model_hash})
                k += 1
    return w.result
