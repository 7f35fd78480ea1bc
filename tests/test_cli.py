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


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_verify_output_fits_120_columns_and_explains_itself(capsys):
    """Sections with a summary line each; statistics named with their critical value and
    alpha; the formula only with --wide; Monte Carlo rows on the --mdp MDP."""
    assert cli.main(["verify", "--mdp", "two_state"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(x) for x in lines) <= 120
    for section in ("exact", "solvers", "monte carlo"):
        assert any(x.startswith(f"-- {section}: ") and " passed, 0 failed" in x for x in lines), section
    mc = [x for x in lines if x.startswith("E[reinforce]")]
    assert mc and "two_state,T=" in mc[0] and "chi2 " in mc[0] and "(a=1e-06)" in mc[0]
    assert "garnet(3,2,2)" not in out  # no rows for unrelated MDPs
    assert "V = r_pi + gamma P_pi V" not in out
    assert cli.main(["verify", "--mdp", "two_state", "--no-monte-carlo", "--wide"]) == 0
    assert "V = r_pi + gamma P_pi V" in capsys.readouterr().out


def test_verify_table_clips_long_names_and_reports_failures():
    rows = [verify.Check("exact", "x" * 200, "f" * 200, "gym:" + "y" * 100, 2e-9, 1e-10),
            verify.Check("monte carlo", "E[q] = exact expectation", "f", "m", 50.0, 30.7, "chi2", 1e-6)]
    text = verify.format_table(rows)
    assert max(len(x) for x in text.splitlines()) <= 120 and "f" * 50 not in text
    assert "-- exact: 0 passed, 1 failed" in text and "chi2 50" in text and text.endswith("0 passed, 2 failed")
    assert "f" * 200 in verify.format_table(rows, wide=True)


def test_study_strict_json_says_why_cells_are_empty(capsys):
    # the leave-one-out 'optimal' baseline has no exact covariance (its coefficients are
    # ratios of sums over the other episodes), and N = 10 < 10 x 80 parameters is too few
    # for Hotelling's test with the sample covariance: both cells empty, each saying why
    argv = ["study", "--mdp", "garnet:S=20,A=4,b=3,seed=0", "--estimators", "reinforce", "--batch-sizes", "10",
            "--repeats", "1", "--baseline", "optimal", "--json", "--quiet"]
    assert cli.main(argv) == 0
    payload = _strict_json(capsys.readouterr().out)
    (cell,) = payload["summary"]
    assert payload["horizon"] == cell["horizon"] == 20
    assert cell["var_exact"] is None and cell["bias_p"] is None and cell["mse_exact"] is None
    assert cell["var_sampled"] > 0
    assert any("'optimal' baseline" in w and "no finite exact covariance" in w for w in cell["empty_because"])
    assert any("Hotelling" in w and "10 x 80 parameters" in w for w in cell["empty_because"])
    assert cli.main(argv[:-2] + ["--quiet"]) == 0
    text = capsys.readouterr().out
    assert "sampled horizon 20" in text and "[1] nan in " in text and "[2] nan in " in text


def test_study_says_when_the_exact_recursion_is_over_budget(capsys):
    # T S^2 A p = 20 * 500^2 * 4 * 2000 = 4e10 > sweep.EXACT_BUDGET = 2e10: no exact variance
    # (while S = 20 above, or any MDP within the budget, gets one from the recursion)
    argv = ["study", "--mdp", "garnet:S=500,A=4,b=3,seed=0", "--estimators", "reinforce", "--batch-sizes", "10",
            "--repeats", "1", "--json", "--quiet"]
    assert cli.main(argv) == 0
    (cell,) = _strict_json(capsys.readouterr().out)["summary"]
    assert cell["var_exact"] is None
    assert any("exceeds sweep.EXACT_BUDGET" in w for w in cell["empty_because"])
    assert cli.main(["study", "--mdp", "garnet:S=20,A=4,b=3,seed=0", "--estimators", "reinforce", "--batch-sizes",
                     "10", "--repeats", "1", "--json", "--quiet"]) == 0
    (cell,) = _strict_json(capsys.readouterr().out)["summary"]
    assert cell["var_exact"] > 0 and not any("EXACT_BUDGET" in w for w in cell["empty_because"])


def test_study_takes_npz_gym_and_baseline(tmp_path, capsys):
    path = tmp_path / "m.npz"
    verify.envs.two_state().to_npz(str(path))
    for spec in (str(path), "gym:FrozenLake-v1:is_slippery=False"):
        assert cli.main(["study", "--mdp", spec, "--estimators", "reinforce,gae", "--batch-sizes", "20",
                         "--repeats", "1", "--horizon", "3", "--baseline", "mean", "--json", "--quiet"]) == 0
        payload = _strict_json(capsys.readouterr().out)
        base = {r["estimator"]: r["baseline"] for r in payload["rows"]}
        assert base == {"reinforce": "mean", "gae": None}
        # mean baseline: the exact expectation is (1 - 1/N) grad J, so |E - grad J| = |grad J| / N
        rf = next(r for r in payload["rows"] if r["estimator"] == "reinforce")
        assert rf["bias_exact_norm"] == pytest.approx(rf["grad_norm"] / 20)


def test_names_match_between_cli_and_envs(capsys):
    assert verify.envs.make("gridworld").n_states == verify.envs.sutton_barto_gridworld().n_states
    for name in verify.envs.catalog():
        assert hasattr(verify.envs, name) and callable(getattr(verify.envs, name))
    assert cli.main(["solve", "--mdp", "gridworld", "--json"]) == 0
    a = _strict_json(capsys.readouterr().out)
    assert cli.main(["solve", "--mdp", "sutton_barto_gridworld", "--json"]) == 0
    b = _strict_json(capsys.readouterr().out)
    assert a["v_star"] == b["v_star"] and max(a["v_star"]) == pytest.approx(24.4, abs=0.05)  # S&B Example 3.8
