"""The command line's error boundary: every bad invocation ends in one line
``tabularpg CMD: error: ...`` naming the flag, exit code 2 (usage or input) or 1
(numerical failure), and never a traceback. Each row runs ``python -m tabularpg`` as a
subprocess, as a user would; inputs that can be refused before computing must be
refused within a few seconds (a refusal after the whole computation would time out)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tabularpg as tpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("npz")
    m = tpg.envs.two_state()
    P = np.array(m.P)
    P[0, 0, 0] = 0.7
    np.savez(d / "bad_rows.npz", P=P, R=m.R, mu=m.mu, gamma=0.9)
    np.savez(d / "no_keys.npz", P=m.P, R=m.R)
    (d / "garbage.npz").write_bytes(b"not an npz file")
    return d


# (id, argv, exit code, text that must appear in the error line): the invocations that
# ended in a traceback, a late failure or an internal parameter name; run as subprocesses
BAD = [
    ("gym-not-tabular", ["solve", "--mdp", "gym:CartPole-v1"], 2, "--mdp"),
    ("gym-bad-kwarg", ["solve", "--mdp", "gym:FrozenLake-v1:bogus=1"], 2, "--mdp"),
    ("missing-npz", ["solve", "--mdp", "missing.npz"], 2, "--mdp"),
    ("npz-rows", ["study", "--mdp", "{d}/bad_rows.npz", "--quiet"], 2, "--mdp"),
    ("npz-keys", ["study", "--mdp", "{d}/no_keys.npz", "--quiet"], 2, "--mdp"),
    ("npz-garbage", ["study", "--mdp", "{d}/garbage.npz", "--quiet"], 2, "--mdp"),
    ("repeats-0", ["study", "--mdp", "two_state", "--repeats", "0"], 2, "--repeats"),
    ("out-format", ["study", "--mdp", "two_state", "--out", "res.xlsx"], 2, "--out"),
    ("plot-dir", ["solve", "--mdp", "two_state", "--plot", "/nonexistent/dir/x.png"], 2, "--plot"),
    ("seed-negative", ["verify", "--seed", "-1"], 2, "--seed"),
    ("batch-negative", ["study", "--mdp", "two_state", "--batch-sizes", "-10,100"], 2, "--batch-sizes"),
    ("iters-0", ["train", "--mdp", "two_state", "--iters", "0"], 2, "--iters"),
    ("step-negative", ["train", "--mdp", "two_state", "--step-size", "-1"], 2, "--step-size"),
    ("sample-horizon-0", ["train", "--mdp", "two_state", "--sample-horizon", "0"], 2, "--sample-horizon"),
    ("improper-policy", ["train", "--mdp", "cliff_walking", "--algorithm", "reinforce", "--step-size", "1e6",
                         "--iters", "3", "--episodes", "10", "--quiet"], 1, "numerical failure"),
]

# more bad arguments, run in-process (same boundary, no interpreter start-up)
MORE = [
    ("unknown-mdp", ["solve", "--mdp", "nope"], 2, "--mdp"),
    ("out-dir", ["study", "--mdp", "two_state", "--out", "/nonexistent/dir/t.csv"], 2, "--out"),
    ("plot-format", ["train", "--mdp", "two_state", "--plot", "x.xyz"], 2, "--plot"),
    ("batch-text", ["study", "--mdp", "two_state", "--batch-sizes", "1,x"], 2, "--batch-sizes"),
    ("estimator", ["study", "--mdp", "two_state", "--estimators", "nope"], 2, "--estimators"),
    ("baseline", ["study", "--mdp", "two_state", "--baseline", "bogus"], 2, "--baseline"),
    ("step-nan", ["train", "--mdp", "two_state", "--step-size", "nan"], 2, "--step-size"),
    ("episodes-1", ["train", "--mdp", "two_state", "--episodes", "1"], 2, "--episodes"),
    ("gamma-2", ["solve", "--mdp", "two_state", "--gamma", "2"], 2, "--gamma"),
    ("horizon-0", ["solve", "--mdp", "two_state", "--horizon", "0"], 2, "--horizon"),
    ("gym-bad-option", ["solve", "--mdp", "gym:FrozenLake-v1:is_slippery"], 2, "--mdp"),
]


@pytest.fixture(scope="module")
def results(files):
    """Start every subprocess at once (the interpreter start-up dominates), then collect."""
    procs = {b[0]: subprocess.Popen([sys.executable, "-m", "tabularpg", *[a.format(d=files) for a in b[1]]],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for b in BAD}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        out[name] = (p.returncode, stdout, stderr)
    return out


def _check(argv, code, flag, returncode, stdout, stderr):
    assert returncode == code, (returncode, stderr)
    assert "Traceback" not in stderr and "Traceback" not in stdout
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"tabularpg {argv[0]}: error: "), last
    assert flag in last, last


@pytest.mark.parametrize("name,argv,code,flag", BAD, ids=[b[0] for b in BAD])
def test_bad_invocation_fails_cleanly(name, argv, code, flag, results):
    _check(argv, code, flag, *results[name])


@pytest.mark.parametrize("name,argv,code,flag", MORE, ids=[b[0] for b in MORE])
def test_more_bad_arguments(name, argv, code, flag, capsys):
    from tabularpg import cli

    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    out = capsys.readouterr()
    _check(argv, code, flag, rc, out.out, out.err)


def test_error_boundary_maps_library_errors(monkeypatch, capsys):
    """In-process: a NumericalError from the library exits 1 and says so; a library
    ValidationError exits 2 with the flag name in place of the parameter name."""
    from tabularpg import NumericalError, ValidationError, cli, optim

    def boom(*a, **k):
        raise NumericalError("J became inf at iteration 3")

    monkeypatch.setattr(optim, "natural_policy_gradient", boom)
    assert cli.main(["train", "--mdp", "two_state"]) == 1
    assert "train: error: numerical failure: J became inf" in capsys.readouterr().err

    def refuse(*a, **k):
        raise ValidationError("`n_iter` must be >= 1; got 0")

    monkeypatch.setattr(optim, "natural_policy_gradient", refuse)
    assert cli.main(["train", "--mdp", "two_state"]) == 2
    assert "train: error: --iters must be >= 1" in capsys.readouterr().err


def test_train_exits_nonzero_when_final_j_is_not_finite(monkeypatch, capsys):
    from tabularpg import cli, optim

    real = optim.natural_policy_gradient

    def nan_run(*a, **k):
        res = real(*a, **k)
        j = res.j.copy()
        j[-1] = np.nan
        return optim.OptimResult(theta=res.theta, j=j, kl=res.kl, step=res.step, extra=res.extra)

    monkeypatch.setattr(optim, "natural_policy_gradient", nan_run)
    assert cli.main(["train", "--mdp", "two_state", "--iters", "3", "--json"]) == 1
    out = capsys.readouterr()
    assert "numerical failure: the final J is nan" in out.err and "--step-size" in out.err
    assert "NaN" not in out.out and '"J"' in out.out  # strict JSON: null


def test_mdp_help_and_version(capsys):
    from tabularpg import cli

    assert cli.main(["solve", "--mdp", "help"]) == 0
    out = capsys.readouterr().out
    for name, info in tpg.envs.catalog().items():
        assert name in out and all(k in out for k in info["keys"])
    assert "gridworld" in out and "gym:" in out
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"tabularpg {tpg.__version__}"
