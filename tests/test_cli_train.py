"""``tabularpg train`` with its defaults, and every ``--plot``.

Oracle for training: ``J*`` from policy iteration; every algorithm, with its default step
size, iterations and episodes, must close at least half of the gap ``J* - J(theta_0)``
(FrozenLake through Gymnasium, and two built-in MDPs). Plots are read back from the
figure object that was written (its titles name the MDP, gamma, horizon and step size).
"""
import json

import numpy as np
import pytest

from tabularpg import cli, envs

MDPS = ["gym:FrozenLake-v1", "two_state", "bandit"]


def _train(capsys, *argv):
    assert cli.main(["train", *argv, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("mdp", MDPS)
@pytest.mark.parametrize("algorithm", cli._ALGORITHMS)
def test_defaults_close_half_the_gap(algorithm, mdp, capsys):
    if mdp.startswith("gym:"):
        pytest.importorskip("gymnasium")
    p = _train(capsys, "--mdp", mdp, "--algorithm", algorithm)
    j = np.array(p["J"], dtype=float)
    assert len(j) == 101 and np.all(np.isfinite(j))
    gap0, gap = p["J_star"] - j[0], p["J_star"] - j[-1]
    assert gap0 > 0
    assert gap <= 0.5 * gap0, (algorithm, mdp, j[0], j[-1], p["J_star"])


def test_default_step_sizes_are_not_the_old_constant(capsys):
    """Power of the test above: the old default (one --step-size 1.0 for every algorithm)
    leaves pg flat on FrozenLake."""
    pytest.importorskip("gymnasium")
    p = _train(capsys, "--mdp", "gym:FrozenLake-v1", "--algorithm", "pg", "--step-size", "1")
    assert p["J_star"] - p["J"][-1] > 0.5 * (p["J_star"] - p["J"][0])


def test_gym_defaults_gamma_one_and_time_limit(capsys):
    """J of a gym MDP is Gymnasium's expected episode return: gamma = 1 and the TimeLimit
    (100 steps for FrozenLake-v1); env kwargs pass through; --gamma overrides."""
    pytest.importorskip("gymnasium")
    p = _train(capsys, "--mdp", "gym:FrozenLake-v1:is_slippery=False", "--algorithm", "npg", "--iters", "5")
    assert (p["gamma"], p["horizon"]) == (1.0, 100)
    assert p["J_star"] == pytest.approx(1.0)  # deterministic lake: the goal is reached surely
    p = _train(capsys, "--mdp", "gym:FrozenLake-v1:map_name=8x8", "--gamma", "0.9", "--iters", "2")
    assert p["gamma"] == 0.9 and 0 < p["J_star"] < 1


def test_dpo_end_to_end(capsys):
    """DPO from preferences generated on the MDP: the final policy puts most mass on the
    optimal actions, and a different seed draws different preference data."""
    p = _train(capsys, "--mdp", "chain", "--algorithm", "dpo")
    assert p["J"][-1] > p["J"][0] and p["J_star"] - p["J"][-1] < 0.2 * (p["J_star"] - p["J"][0])
    q = _train(capsys, "--mdp", "chain", "--algorithm", "dpo", "--seed", "1")
    assert q["J"][-1] != p["J"][-1]
    pi_ref, prefs, r = cli._dpo_problem(envs.chain(), 0, 1000)
    assert r.min() == 0 and r.max() == pytest.approx(5.0) and len(prefs[0]) == 1000


@pytest.fixture
def figures(monkeypatch):
    """Record the titles of every figure the CLI writes, read back from the figure."""
    seen = []
    real = cli._save

    def save(fig, path):
        titles = [ax.get_title() for ax in fig.axes] + ([fig._suptitle.get_text()] if fig._suptitle else [])
        seen.append((path, titles, len(fig.axes)))
        real(fig, path)

    monkeypatch.setattr(cli, "_save", save)
    return seen


@pytest.mark.parametrize("argv,name,panels", [
    (["train", "--mdp", "two_state", "--iters", "5"], "two_state", 2),
    (["solve", "--mdp", "sutton_barto_gridworld"], "sutton_barto_gridworld", 2),  # grid + colour bar
    (["solve", "--mdp", "chain"], "chain", 1),
    (["study", "--mdp", "garnet:S=3,A=2,b=2,seed=1", "--estimators", "reinforce", "--batch-sizes", "10,20",
      "--repeats", "1", "--horizon", "3"], "garnet:S=3,A=2,b=2,seed=1", 2),
], ids=["train", "solve-grid", "solve-bars", "study"])
def test_plots_written_with_titles(argv, name, panels, tmp_path, figures, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    assert cli.main([*argv, "--plot", str(png), "--quiet"]) == 0
    assert png.stat().st_size > 1000
    assert f"wrote {png}" in capsys.readouterr().err
    (path, titles, n_axes), = figures
    title = " ".join(titles)
    assert path == str(png) and n_axes == panels
    assert name in title and "gamma=" in title and "horizon=" in title
    if argv[0] == "train":
        assert "step size" in title


def test_solve_grid_arrows_follow_the_env_action_order():
    """FrozenLake's actions are left, down, right, up; the drawn greedy policy of the 4x4
    slippery lake must be the well-known one (first row: left, up, up, up)."""
    pytest.importorskip("gymnasium")
    from tabularpg import solve

    mdp = envs.make("gym:FrozenLake-v1")
    greedy = solve.policy_iteration(mdp).pi[0].argmax(-1)
    rows, cols, moves = cli._grid_layout("gym:FrozenLake-v1", mdp)
    arrow = {(-1, 0): "<", (0, -1): "v", (1, 0): ">", (0, 1): "^"}
    drawn = "".join("T" if mdp.terminal[s] else arrow[moves[int(greedy[s])]] for s in range(16))
    assert drawn == "<^^^" "<T<T" "^v<T" "T>vT"
    assert (rows[5], cols[5]) == (1, 1)
