"""The verdict logic of the course's claims, on synthetic metrics (not any lab's numbers)."""

from __future__ import annotations

import pytest

from labflow.compare import lessons
from labflow.compare.lessons import Claim, gt, lt
from labflow.compare.lessons_table import render
from labflow.labs import LABS, lab_lessons


def _results(per_variant: dict[str, list[float]], metric: str = "test_acc") -> dict:
    """variant_results' shape: the primary seed on top, every seed under "seeds"."""
    seeds = [42, 43, 44]
    out = {}
    for variant, values in per_variant.items():
        runs = {s: {"metrics": {metric: v}} for s, v in zip(seeds, values)}
        out[variant] = {**runs[42], "seeds": runs}
    return out


def _verdict(claim: Claim, results: dict, seeds=(42, 43, 44), summary=None) -> str:
    return lessons.score([claim], results, summary or {}, list(seeds))[0].verdict


BEATS = Claim("a_beats_b", "a beats b", "the course", (gt("a.test_acc", "b.test_acc"),))


def test_a_consistent_gap_over_three_seeds_holds():
    assert _verdict(BEATS, _results({"a": [0.80, 0.82, 0.81], "b": [0.70, 0.71, 0.705]})) == lessons.HOLDS


def test_a_consistent_gap_the_other_way_is_reversed():
    assert _verdict(BEATS, _results({"a": [0.70, 0.71, 0.705], "b": [0.80, 0.82, 0.81]})) == lessons.REVERSED


def test_a_gap_that_changes_sign_with_the_seed_is_within_noise():
    assert _verdict(BEATS, _results({"a": [0.80, 0.70, 0.76], "b": [0.75, 0.74, 0.75]})) == lessons.WITHIN_NOISE


def test_one_seed_gives_no_noise_estimate_either_way():
    res = _results({"a": [0.8], "b": [0.7]})
    assert _verdict(BEATS, res, seeds=[42]) == lessons.HOLDS_ONE_SEED
    res = _results({"a": [0.6], "b": [0.7]})
    assert _verdict(BEATS, res, seeds=[42]) == lessons.REVERSED_ONE_SEED


def test_lower_is_better_and_constants_and_nested_summary_numbers():
    res = _results({"lstm": [1.0, 1.1, 0.9]}, metric="test_rmse")
    claim = Claim("beats_persistence", "lstm beats persistence", "c", (lt("lstm.test_rmse", "summary.persistence.rmse"),))
    assert _verdict(claim, res, summary={"persistence": {"rmse": 2.0}}) == lessons.HOLDS
    assert _verdict(claim, res, summary={"persistence": {"rmse": 0.5}}) == lessons.REVERSED
    above = Claim("above_chance", "above chance", "c", (gt("lstm.test_rmse", 0.95),))
    assert _verdict(above, res) == lessons.WITHIN_NOISE  # 1.0, 1.1, 0.9 around 0.95


def test_a_baseline_without_seed_runs_counts_as_the_same_on_every_seed():
    res = _results({"gru": [0.80, 0.81, 0.82]})
    res["always_positive"] = {"metrics": {"test_acc": 0.58}}  # trains nothing: no "seeds"
    claim = Claim("beats_majority", "gru beats the majority", "c", (gt("gru.test_acc", "always_positive.test_acc"),))
    result = lessons.score([claim], res, {}, [42, 43, 44])[0]
    assert result.verdict == lessons.HOLDS and result.checks[0].seeds == 3


def test_a_claim_is_as_good_as_its_worst_check_and_a_missing_metric_says_so():
    res = _results({"adam": [0.8, 0.81, 0.82], "rmsprop": [0.6, 0.8, 0.7], "sgd": [0.7, 0.7, 0.71]})
    claim = Claim("beat_sgd", "both beat sgd", "c", (gt("adam.test_acc", "sgd.test_acc"), gt("rmsprop.test_acc", "sgd.test_acc")))
    assert _verdict(claim, res) == lessons.WITHIN_NOISE
    missing = Claim("m", "m", "c", (gt("adam.test_acc", "adam.no_such_metric"),))
    assert _verdict(missing, res) == lessons.NOT_MEASURED
    gone = Claim("g", "g", "c", (gt("adam.test_acc", "no_such_variant.test_acc"),))
    assert _verdict(gone, res) == lessons.NOT_MEASURED


def test_a_claim_that_turns_names_its_budget_and_the_outputs_agree():
    claim = Claim("deep_wins", "deep beats shallow", "course: 64.74 vs 52.01", (gt("deep.test_acc", "shallow.test_acc"),),
                  turns="holds from 8 epochs on 20k images (measured)")
    res = _results({"deep": [0.70, 0.71, 0.705], "shallow": [0.80, 0.82, 0.81]})
    scored = lessons.score([claim], res, {}, [42, 43, 44])
    assert scored[0].verdict_text == "reversed; holds from 8 epochs on 20k images (measured)"
    assert lessons.metrics(scored) == {"deep_wins": -1}
    md = lessons.markdown("lab99", scored, [42, 43, 44])
    assert "deep beats shallow" in md and "**reversed; holds from 8 epochs" in md and "course: 64.74 vs 52.01" in md
    record = lessons.summary_record("lab99", scored, [42, 43, 44])
    table = render({"lab99": record, "lab98": None, "lab97": lessons.summary_record("lab97", [], [42], "a demo only")})
    assert "lab99  deep beats shallow" in table and "REVERSED" in table and "turns: holds from 8 epochs" in table
    assert "not run yet: dvc repro labs/lab98/dvc.yaml" in table and "no claim: a demo only" in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_a_claim_needs_a_check():
    with pytest.raises(ValueError, match="no checks"):
        Claim("empty", "nothing", "c", ())


def test_every_lab_states_one_to_four_claims_from_the_course():
    for lab in LABS:
        module = lab_lessons(lab)
        assert module is not None, f"{lab} has no lessons.py"
        claims = module.CLAIMS
        assert 1 <= len(claims) <= 4 or getattr(module, "NO_CLAIM", ""), lab
        assert len({c.id for c in claims}) == len(claims), lab
        for claim in claims:
            assert claim.says and claim.course, (lab, claim.id)
            for check in claim.checks:
                for side in (check.a, check.b):
                    assert isinstance(side, (int, float)) or "." in side, (lab, claim.id, side)


def test_a_metric_the_comparison_computed_for_the_primary_seed_only_gives_a_one_seed_verdict():
    res = _results({"a": [0.8, 0.81, 0.82], "b": [0.7, 0.7, 0.7]})
    res["a"]["metrics"] = {**res["a"]["metrics"], "test_f1": 0.9}  # evaluate added it to seed 42's row
    res["b"]["metrics"] = {**res["b"]["metrics"], "test_f1": 0.6}
    claim = Claim("f1", "a beats b on F1", "c", (gt("a.test_f1", "b.test_f1"),))
    result = lessons.score([claim], res, {}, [42, 43, 44])[0]
    assert result.verdict == lessons.HOLDS_ONE_SEED and result.checks[0].seeds == 1


def test_labflow_lessons_reads_results_and_names_labs_not_run(tmp_path, monkeypatch, capsys):
    from labflow.cli import main

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    folder = tmp_path / "results" / "lab04" / "compare"
    folder.mkdir(parents=True)
    res = _results({"adam": [0.8, 0.81, 0.82], "sgd": [0.6, 0.62, 0.61]})
    claim = lab_lessons("lab04").CLAIMS[0]
    scored = lessons.score([Claim(claim.id, claim.says, claim.course, (gt("adam.test_acc", "sgd.test_acc"),))],
                           res, {}, [42, 43, 44])
    import json

    (folder / "lessons.json").write_text(json.dumps(lessons.summary_record("lab04", scored, [42, 43, 44])))
    assert main(["lessons", "4", "5", "--details"]) == 0
    out = capsys.readouterr().out
    assert "lab04  Adam, RMSprop and SGD with momentum" in out and "holds" in out and "p 0.00" in out
    assert "lab05  not run yet: dvc repro labs/lab05/dvc.yaml" in out
    assert main(["lessons", "99"]) == 1
    assert "unknown lab lab99" in capsys.readouterr().err
