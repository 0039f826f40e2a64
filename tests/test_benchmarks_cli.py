"""`python -m benchmarks.run` refuses bad arguments in one line before it loads a model or starts
Ray, and will not pair our measurement with a stored TRL one of another shape."""

import json

import pytest

from benchmarks.run import bench_peer, check_trl_from, main, peer_shape, print_table


@pytest.mark.parametrize("argv,message", [
    (["--only", "rollout,speed"], "unknown part(s) speed"),
    (["--zero_stages", "0,4"], "--zero_stages '0,4'"),
    (["--zero_stages", "two"], "--zero_stages 'two'"),
    (["--peer_tasks", "6"], "--peer_tasks 6"),
    (["--peer_tasks", "0"], "--peer_tasks 0"),
])
def test_bad_arguments_stop_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_stored_trl_figures_must_match_the_peer_shape(tmp_path):
    stored = tmp_path / "old.json"
    stored.write_text(json.dumps({"peer": {"shape": {"tasks": 16, "n": 4, "max_new_tokens": 64},
                                           "trl": {"samples_per_s": 0.17}}}))
    assert check_trl_from(str(stored), peer_shape(quick=False, tasks=16)) is None
    problem = check_trl_from(str(stored), peer_shape(quick=False, tasks=None))
    assert "--peer_tasks 16" in problem
    without_trl = tmp_path / "ours_only.json"
    without_trl.write_text(json.dumps({"peer": {"shape": {"tasks": 4}, "trl": None}}))
    assert "no TRL measurement" in check_trl_from(str(without_trl), peer_shape(quick=False, tasks=4))
    assert "not a results.json" in check_trl_from(str(tmp_path / "missing.json"), peer_shape(False, None))


def test_trl_shape_mismatch_is_refused_up_front(tmp_path, capsys):
    stored = tmp_path / "old.json"
    stored.write_text(json.dumps({"peer": {"shape": {"tasks": 16, "n": 4, "max_new_tokens": 64},
                                           "trl": {"samples_per_s": 0.17}}}))
    with pytest.raises(SystemExit):
        main(["--only", "peer", "--trl_from", str(stored)])
    assert "pass --peer_tasks 16" in capsys.readouterr().err


def test_a_reused_trl_figure_carries_its_day_into_the_results_and_the_table(tmp_path, capsys):
    stored = tmp_path / "old.json"
    stored.write_text(json.dumps({"date": "2026-11-23 16:38:00",
                                  "peer": {"shape": {"tasks": 4, "n": 4, "max_new_tokens": 64},
                                           "trl": {"samples_per_s": 0.2}}}))
    rows = [{"timing/iteration": t, "timing/introspection": 1.0, "timing/update": 2.0,
             "train/response_length": 20.0, "peak_pss_gb": 1.0} for t in (30.0, 9.0, 11.0)]
    peer = bench_peer("unused", [], rows, peer_shape(quick=False, tasks=None), trl_from=str(stored))
    assert peer["trl"]["measured_on"] == "2026-11-23 16:38:00" and peer["trl"]["reused_from"] == str(stored)
    # 16 samples per iteration, the warm-up dropped: 32 samples in (9 - 1) + (11 - 1) s
    assert peer["ratio"] == pytest.approx((32 / 18) / 0.2)
    print_table({"peer": peer})
    line = capsys.readouterr().out
    assert "measured 2026-11-23 16:38:00" in line and "not the goal's measure" in line
