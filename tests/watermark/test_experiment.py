"""The tiny loop at test size: teacher, watermarked and clean distillation, suspect test."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from distillguard import corpora
from distillguard.watermark import experiment


@pytest.fixture(scope="module")
def result():
    if corpora.load().empty:
        pytest.skip("no corpora found (../shared/datasets); the loop trains on them")
    return experiment.run("test", experiment.Params(delta=2.0), log=lambda m: None)


@pytest.mark.slow
def test_watermarked_student_is_found_and_clean_ones_are_not(result):
    assert result["p_watermarked_student"] < 1e-4
    assert result["queries_watermarked_student"] <= 400
    assert result["p_clean_student"] > 1e-3
    assert result["p_pretrain_model"] > 1e-3
    assert "carries our watermark" in result["suspect"]["watermarked_student"]["verdict"]
    assert "No evidence" in result["suspect"]["clean_student"]["verdict"]


@pytest.mark.slow
def test_null_keys_give_uniform_p_values(result):
    null = result["clean_student_null_keys"]
    assert null["keys"] >= 20 and null["ks_uniform_p"] > 1e-3
    assert result["watermarked_student_wrong_keys"]["ks_uniform_p"] > 1e-3


@pytest.mark.slow
def test_text_detection_numbers_are_measured(result):
    assert result["tpr_at_200_tokens"] >= 0.9
    assert result["fpr_clean"] <= 0.01
    td = result["text_detection"]
    assert set(td["tpr_by_scored_tokens"]) == {"25", "50", "100", "200", "400"}
    assert td["fpr_clean_by_scored_tokens"]["200"]["samples"] > 50
    assert td["calibration_ks_uniform_p_at_200"] > 1e-3
    q = result["quality"]
    assert q["delta_2"]["green_share"] > q["delta_1"]["green_share"] > 0.25
    assert result["speed"]["text_detection_mb_per_s"] > 0
    assert result["lexical"]["canonical_form_identical_share"] == 1.0
