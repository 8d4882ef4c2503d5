"""Rewrite the shipped prompt sets from :func:`make_prompt_set`: ``python -m openimagen.eval.prompts``."""
from openimagen.eval.prompts import SPLITS, dumps, make_prompt_set, shipped_path

if __name__ == "__main__":
    for split in SPLITS:
        prompt_set = make_prompt_set(split)
        shipped_path(split).write_text(dumps(prompt_set))
        counts = {}
        for c in prompt_set["cases"]:
            counts[c["category"]] = counts.get(c["category"], 0) + 1
        print(f"wrote {shipped_path(split)}: {len(prompt_set['cases'])} prompts {counts}")
