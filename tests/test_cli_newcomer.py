"""What a newcomer sees on a mistake: a misspelt flag is reported on the command's own
usage line, an unknown MDP or a bad number without library or Python internals, and
``--mdp help`` describes each MDP in whole sentences."""
import pytest

import tabularpg as tpg
from tabularpg import cli


def _run(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    return rc, capsys.readouterr()


@pytest.mark.parametrize("argv", [["train", "--mdp", "two_state", "--steps", "3"],
                                  ["solve", "--mdp", "two_state", "extra"]])
def test_unknown_argument_is_reported_by_the_command(argv, capsys):
    rc, out = _run(argv, capsys)
    assert rc == 2
    lines = out.err.strip().splitlines()
    assert lines[0].startswith(f"usage: tabularpg {argv[0]} ")
    assert lines[-1].startswith(f"tabularpg {argv[0]}: error: unrecognized arguments: {' '.join(argv[3:])}")


@pytest.mark.parametrize("argv, expected", [
    (["solve", "--mdp", "nope"], "tabularpg solve: error: --mdp: unknown MDP 'nope'"),
    (["study", "--mdp", "two_state", "--batch-sizes", "10,abc"],
     "tabularpg study: error: --batch-sizes: expected comma-separated integers; got '10,abc'"),
])
def test_messages_speak_the_command_line(argv, expected, capsys):
    rc, out = _run(argv, capsys)
    assert rc == 2 and out.out == ""
    assert out.err.strip().startswith(expected), out.err
    assert "`" not in out.err and "int()" not in out.err


def test_mdp_help_has_whole_first_sentences(capsys):
    rc, out = _run(["solve", "--mdp", "help"], capsys)
    assert rc == 0
    text = " ".join(out.out.split())
    assert '"Natural actor-critic algorithms", Automatica 45(11)' in text
    assert "Reinforcement Learning: An Introduction, 2nd ed." in text
    assert "reward -1 per step, -100 and back to the start" in text
    assert "``" not in text and max(map(len, out.out.splitlines())) <= 100
    for name in tpg.envs.catalog():
        assert f"  {name}" in out.out


def test_study_explains_its_columns(capsys):
    rc, out = _run(["study", "--help"], capsys)
    assert rc == 0
    text = " ".join(out.out.split())
    for column in ("|E-grad J| =", "bias p =", "var/ep MC and var/ep exact =", "MSE and MSE exact =", "cosine ="):
        assert column in text
    rc, out = _run(["study", "--mdp", "two_state", "--estimators", "reinforce", "--batch-sizes", "10",
                    "--horizon", "3", "--repeats", "2"], capsys)
    assert rc == 0
    header = next(line for line in out.out.splitlines() if line.startswith("estimator"))
    assert all(c in header for c in ("|E-grad J|", "bias p", "var/ep MC", "MSE exact", "cosine"))
    assert out.out.rstrip().splitlines()[-1].startswith("columns: 'tabularpg study --help'")


def _solve_figure(spec, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    figs = []
    monkeypatch.setattr(cli, "_save", lambda fig, path: figs.append(fig))
    rc, _ = _run(["solve", "--mdp", spec, "--plot", "unused.png"], capsys)
    assert rc == 0 and len(figs) == 1
    return figs[0]


def test_cliff_cells_are_grey_in_the_solve_plot(monkeypatch, capsys):
    """The 10 cliff cells are never entered: no value, no arrow, said in the title; cell
    borders are drawn."""
    import numpy as np

    ax = _solve_figure("cliff_walking", monkeypatch, capsys).axes[0]
    img = np.asarray(ax.images[0].get_array().filled(np.nan))
    assert img.shape == (4, 12)
    assert np.isnan(img[3, 1:11]).all() and np.isfinite(img[:3]).all() and np.isfinite(img[3, [0, 11]]).all()
    assert "grey: never reached" in ax.get_title()
    assert len(ax.texts) == 48 - 10                              # one arrow or "T" per reached cell
    assert list(ax.get_xticks(minor=True)) == list(np.arange(-0.5, 12))  # cell borders


def test_bar_plot_of_states_has_integer_ticks(monkeypatch, capsys):
    ax = _solve_figure("garnet:S=7,A=2,b=2", monkeypatch, capsys).axes[0]
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 0 <= t <= 6]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_train_says_how_the_step_size_was_chosen_and_what_kl_is(capsys):
    rc, out = _run(["train", "--mdp", "two_state", "--algorithm", "pg", "--iters", "2"], capsys)
    assert rc == 0
    first, header, row0 = out.out.splitlines()[:3]
    assert ", step size " in first and " = 1 / max|grad J(theta_0)|: J* = 18" in first
    assert header.split() == ["iter", "J", "J*", "-", "J", "KL(old||new)"]
    assert row0.split()[-1] == "-" and "nan" not in out.out   # no step before iteration 0
    rc, out = _run(["train", "--mdp", "two_state", "--algorithm", "pg", "--iters", "2", "--step-size", "0.5"], capsys)
    assert rc == 0 and "step size 0.5 (--step-size): J* = 18" in out.out.splitlines()[0]


@pytest.mark.parametrize("spec, expected", [("garnet:S=-1", "--mdp: S must be >= 1; got -1"),
                                            ("garnet:b=9,S=3", "--mdp: b must be <= S = 3; got 9"),
                                            ("chain:slip=2", "--mdp: slip must lie in [0.0, 1.0]; got 2")])
def test_mdp_spec_errors_use_the_spec_keys(spec, expected, capsys):
    rc, out = _run(["solve", "--mdp", spec], capsys)
    assert rc == 2
    assert out.err.strip() == f"tabularpg solve: error: {expected}"


def _study_figure(argv, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    figs = []
    monkeypatch.setattr(cli, "_save", lambda fig, path: figs.append(fig))
    rc, _ = _run(["study", *argv, "--quiet", "--plot", "unused.png"], capsys)
    assert rc == 0 and len(figs) == 1
    return figs[0]


def test_study_plot_ticks_are_the_batch_sizes_and_exact_lines_are_drawn(monkeypatch, capsys):
    fig = _study_figure(["--mdp", "two_state", "--estimators", "reinforce", "--batch-sizes", "10,100",
                         "--horizon", "3", "--repeats", "2"], monkeypatch, capsys)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "100"]
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "reinforce: exact tr Cov(mean)" in labels


def test_study_plot_says_when_there_is_no_exact_line(monkeypatch, capsys):
    fig = _study_figure(["--mdp", "garnet:S=200,A=10,b=3", "--estimators", "reinforce", "--batch-sizes", "10",
                         "--horizon", "100", "--repeats", "2"], monkeypatch, capsys)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["reinforce (Monte Carlo); no exact value, see the table"]


@pytest.mark.parametrize("value", ["1e999", "nan", "bogus"])
def test_baseline_must_be_a_finite_number_or_a_name(value, capsys):
    rc, out = _run(["study", "--mdp", "two_state", "--baseline", value], capsys)
    assert rc == 2
    assert out.err.strip() == ("tabularpg study: error: --baseline: expected none, a finite number or one of "
                               f"mean, leave_one_out, optimal; got '{value}'")
