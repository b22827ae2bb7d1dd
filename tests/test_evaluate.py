"""The evaluation arithmetic: what counts as right, and the calibration error over answers."""

from __future__ import annotations

import pytest

from qa.evaluate import expected_calibration_error, reliability, summarize


def row(golds: list[str], answered: bool, hit: bool, score: float) -> dict:
    return {"golds": golds, "answered": answered, "hit": hit, "score": score, "em": 0.0, "f1": 0.0,
            "relevant_rank": 1 if golds else None, "latency_ms": 1.0}


def test_reliability_bins_answers_by_score_and_counts_the_right_ones():
    table = reliability([0.05, 0.95, 0.91, 1.0, 0.55], [False, True, False, True, True])
    assert table == [
        {"bin": "0.0-0.1", "answers": 1, "mean_score": 0.05, "right": 0.0},
        {"bin": "0.5-0.6", "answers": 1, "mean_score": 0.55, "right": 1.0},
        # 1.0 falls in the last bin, not an eleventh
        {"bin": "0.9-1.0", "answers": 3, "mean_score": pytest.approx(0.9533, abs=1e-4), "right": pytest.approx(2 / 3, abs=1e-4)},
    ]


def test_ece_is_zero_when_scores_match_the_share_right_and_grows_with_overconfidence():
    calibrated = reliability([0.75] * 4, [True, True, True, False])
    assert expected_calibration_error(calibrated, 4) == pytest.approx(0.0)
    overconfident = reliability([0.99] * 4, [True, False, False, False])
    assert expected_calibration_error(overconfident, 4) == pytest.approx(0.74)
    # weighted by each bin's share of the answers
    mixed = reliability([0.75] * 4 + [0.99] * 4, [True, True, True, False, True, False, False, False])
    assert expected_calibration_error(mixed, 8) == pytest.approx(0.37)


def test_summary_ece_counts_answered_questions_and_any_answer_to_an_unanswerable_one_as_wrong():
    rows = [
        row(["x"], True, True, 0.9),
        row(["x"], True, False, 0.9),  # a wrong quote
        row([], True, False, 0.9),  # answered, but the documents do not hold the answer: wrong
        row([], False, False, 0.1),  # abstained: not in the table
    ]
    summary = summarize(rows)
    assert summary["reliability"] == [{"bin": "0.9-1.0", "answers": 3, "mean_score": 0.9, "right": pytest.approx(0.3333)}]
    assert summary["ece"] == pytest.approx(0.5667, abs=1e-3)


def test_summary_without_answers_has_no_ece():
    summary = summarize([row(["x"], False, False, 0.2)])
    assert summary["ece"] is None and "reliability" not in summary
