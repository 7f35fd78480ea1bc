"""The command line: verify passes on the built-ins; usage errors exit with code 2."""
import json
import subprocess
import sys

import pytest

from tabularpg import cli, verify


def test_verify_exact_rows_all_pass(capsys):
    assert cli.main(["verify", "--no-monte-carlo"]) == 0
    out = capsys.readouterr().out
    assert "policy gradient theorem (tabular)" in out and " 0 failed" in out


def test_verify_detects_a_wrong_gradient(monkeypatch):
    """Power of the exact check: a gradient off by 1e-6 relative must fail its row."""
    from tabularpg import exact

    real = exact.policy_gradient
    monkeypatch.setattr(exact, "policy_gradient", lambda *a, **k: real(*a, **k) * (1 + 1e-6))
    rows = verify.exact_checks({"two_state": verify.envs.two_state()})
    bad = [r for r in rows if not r.passed]
    assert {r.identity for r in bad} >= {"policy gradient theorem (tabular)", "policy gradient theorem (linear)"}
    assert all("gradient" in r.identity for r in bad)


def test_solve_json(capsys):
    assert cli.main(["solve", "--mdp", "cliff_walking", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["J_star"] == pytest.approx(-13.0)


@pytest.mark.parametrize("argv,match", [
    (["solve", "--mdp", "nope"], "unknown MDP 'nope'; valid names"),
    (["solve", "--mdp", "garnet:Q=1"], "bad option 'Q=1' for garnet"),
    (["solve", "--mdp", "missing.npz"], "no such file"),
], ids=["unknown-mdp", "bad-option", "missing-file"])
def test_usage_errors_exit_2(argv, match, capsys):
    assert cli.main(argv) == 2
    assert match in capsys.readouterr().err


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "tabularpg", "verify", "--no-monte-carlo", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert all(row["passed"] for row in json.loads(r.stdout))


def test_verify_monte_carlo_rows_pass():
    from tabularpg._verify_mc import monte_carlo_rows

    rows = monte_carlo_rows(seed=0)
    assert len(rows) >= 2 * 12 + 1 and all(r["passed"] for r in rows)


def test_study_json_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png, csv = tmp_path / "s.png", tmp_path / "s.csv"
    argv = ["study", "--mdp", "garnet:S=3,A=2,b=2,seed=1", "--estimators", "reinforce,reward_to_go",
            "--batch-sizes", "20,200", "--repeats", "2", "--horizon", "3", "--json", "--plot", str(png),
            "--out", str(csv), "--quiet"]
    assert cli.main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["rows"]) == 8 and png.stat().st_size > 1000 and csv.exists()
    for row in payload["summary"]:
        assert row["bias_exact_norm"] == 0.0  # both unbiased for the truncated objective
        assert row["var_exact"] > 0


def test_train_reaches_optimum(capsys):
    assert cli.main(["train", "--mdp", "two_state", "--algorithm", "npg", "--iters", "40", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["J"][-1] == pytest.approx(payload["J_star"], abs=1e-6)


@pytest.mark.parametrize("argv,match", [
    (["study", "--mdp", "two_state", "--estimators", "nope"], "unknown ['nope']"),
    (["study", "--mdp", "two_state", "--batch-sizes", "1,x"], "--batch-sizes"),
], ids=["unknown-estimator", "bad-batch-size"])
def test_study_usage_errors(argv, match, capsys):
    assert cli.main(argv) == 2
    assert match in capsys.readouterr().err


def test_verify_on_a_user_mdp_with_directional_checks(monkeypatch, capsys):
    monkeypatch.setattr(verify, "_FULL_CHECK_PARAMS", 10)  # force the directional path
    assert cli.main(["verify", "--mdp", "garnet:S=8,A=3,b=2,seed=4", "--no-monte-carlo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any("4 directions" in r["identity"] for r in rows) and all(r["passed"] for r in rows)
    assert {r["mdp"] for r in rows} == {"garnet:S=8,A=3,b=2,seed=4"}
