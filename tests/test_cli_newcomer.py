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
