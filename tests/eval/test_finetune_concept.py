"""Issue 14, point 4 in small seeded form: a rank-4 LoRA on the shipped base stage, 100 steps on 20 crosses, makes
crosses appear where the base model makes almost none; the report and its table are written."""
import json

from openimagen.eval.finetune_concept import Experiment, run


def test_a_lora_teaches_the_shipped_model_the_new_shape(tmp_path):
    exp = Experiment(tmp_path / "concept", variants=("lora4-conv",), steps=200, lr_lora=1e-2, images_per_prompt=2,
                     suite_limit=0, concept_sets=("trained",), threads=1)
    report = run(exp)
    before, after = report["rows"]["base"], report["rows"]["lora4-conv"]
    assert after["cross_rate"] >= before["cross_rate"] + 0.15, report["rows"]
    assert after["concept_trained"] >= before["concept_trained"]
    assert after["bytes_vs_stage"] < 0.05 and after["train_seconds"] > 0
    assert json.loads((tmp_path / "concept" / "report.json").read_text())["rows"].keys() == {"base", "lora4-conv"}
    assert "| lora4-conv |" in (tmp_path / "concept" / "report.md").read_text()
    assert (tmp_path / "concept" / "lora4-conv-adapter" / "adapter.json").is_file()
