"""The arena's table, frontier, plot and ``tabularpg arena`` command."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tabularpg import rlhf
from tabularpg.cli import main
from tabularpg.rlhf import arena
from tabularpg.rlhf import train as T

ROOT = Path(__file__).resolve().parents[1]
SMALL = "random:X=6,Y=4,seed=1"


def _main(capsys, *args):
    code = main(["arena", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tabularpg", "arena", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def test_run_arena_rows_are_means_over_seeds_with_a_t_interval():
    res = arena.run_arena(SMALL, ["sft", "rloo:k=2", "dpo"], seeds=3, n_iter=10, n_prompts=4)
    labels = [r["algorithm"] for r in res.rows]
    assert labels == ["sft", "rloo (k=2)", "dpo", "pi*_beta(RM)", "pi*_beta(r)"]
    rloo = res.rows[1]
    wins = [f["win_rate"] for f in res.finals["rloo (k=2)"]]
    assert rloo["win_rate"] == pytest.approx(np.mean(wins))
    low, high = stats.t.interval(0.95, len(wins) - 1, loc=np.mean(wins), scale=stats.sem(wins))
    assert (rloo["win_rate_low"], rloo["win_rate_high"]) == pytest.approx((low, high), rel=1e-12)
    assert high - low > 0
    assert res.rows[0]["win_rate"] == pytest.approx(0.5, abs=1e-12)    # SFT is pi_ref
    text = arena.format_table(res)
    assert "rloo (k=2)" in text and "exact optima" in text
    again = arena.run_arena(SMALL, ["sft", "rloo:k=2", "dpo"], seeds=3, n_iter=10, n_prompts=4)
    assert again.finals == res.finals                                   # seeded


def test_frontier_is_monotone_and_reaches_the_reference_as_beta_grows():
    pipe = T.prepare(rlhf.make_world(SMALL), n_demos=50, n_pairs=100, rng=0)
    fr = arena.frontier(pipe, betas=np.geomspace(0.05, 1e4, 30))
    assert np.all(np.diff(fr["kl_true"]) < 0)        # larger beta, closer to pi_ref
    assert np.all(np.diff(fr["win_true"]) < 0)
    assert fr["win_true"][-1] == pytest.approx(0.5, abs=1e-3)
    assert fr["win_rm"][-1] == pytest.approx(0.5, abs=1e-3)


def test_cli_subprocess_prints_the_table():
    out = _cli("--world", SMALL, "--algorithms", "sft", "rloo:k=2,lr=5", "grpo", "--seeds", "2", "--iters", "5",
               "--prompts", "3")
    assert out.returncode == 0, out.stderr
    assert "rloo (k=2)" in out.stdout and "win vs ref" in out.stdout


def test_cli_json_and_plot(tmp_path, capsys):
    code, out, _ = _main(capsys, "--world", SMALL, "--algorithms", "sft", "rebel", "--seeds", "2", "--iters", "3",
                         "--json")
    assert code == 0
    payload = json.loads(out)
    assert [r["algorithm"] for r in payload["rows"]][:2] == ["sft", "rebel"]
    png = tmp_path / "arena.png"
    code, _, err = _main(capsys, "--world", SMALL, "--algorithms", "sft", "dpo", "--seeds", "1", "--iters", "3",
                         "--plot", str(png))
    assert code == 0, err
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("args, match", [
    (["--world", "moon"], "unknown world"),
    (["--world", SMALL, "--algorithms", "sac"], "unknown 'sac'"),
    (["--world", SMALL, "--algorithms", "rloo:k=1", "--iters", "1"], "`k` must be >= 2"),
    (["--world", SMALL, "--beta", "0"], "--beta must be > 0"),
    (["--world", SMALL, "--seeds", "0"], "--seeds must be >= 1"),
])
def test_cli_usage_errors_exit_2(args, match, capsys):
    code, _, err = _main(capsys, *args)
    assert code == 2 and match in err, err


def test_bad_arguments_of_run_arena():
    with pytest.raises(ValueError, match="`algorithms`"):
        arena.run_arena(SMALL, "rloo")
    with pytest.raises(ValueError, match="`policy`"):
        arena.default_algorithms("neural")
    with pytest.raises(TypeError, match="`world`"):
        arena.run_arena(3.0, ["sft"])


def test_cli_table_header_lines_up_and_plot_path_is_reported(tmp_path, capsys):
    png = tmp_path / "a.png"
    code, out, err = _main(capsys, "--world", SMALL, "--algorithms", "sft", "dpo", "--seeds", "2", "--iters", "3",
                           "--plot", str(png))
    assert code == 0, err
    assert f"wrote {png}" in err
    header, row = out.splitlines()[1], out.splitlines()[3]    # header, then sft, then dpo
    assert row.startswith("dpo")
    # each header word ends in the column of its value: win rate, the interval, vs demo
    win, ci_end, demo = header.index("%") + 1, header.index("CI)") + 3, header.index("demo %") + 6
    assert row[:win].rstrip()[-1].isdigit() and row[win - 1].isdigit()
    assert row[ci_end - 1] == "]" and row[demo - 1].isdigit()


@pytest.mark.parametrize("args, flag", [(("--seeds", "0"), "--seeds"), (("--algorithms", "nope"), "--algorithms"),
                                        (("--world", "nope"), "--world"), (("--iters", "0"), "--iters")])
def test_cli_errors_name_the_flag(capsys, args, flag):
    code, out, err = _main(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(f"tabularpg arena: error: {flag}") and "`" not in err


def test_cli_json_is_strict_with_one_seed(capsys):
    """One seed has no confidence interval: null in the JSON, never NaN."""
    code, out, _ = _main(capsys, "--world", SMALL, "--algorithms", "sft", "--seeds", "1", "--iters", "2", "--json")
    assert code == 0

    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    payload = json.loads(out, parse_constant=refuse)
    assert payload["rows"][0]["win_rate_low"] is None and payload["rows"][0]["win_rate"] is not None


def test_plot_title_says_what_dots_and_lines_are(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    titles = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: titles.append(fig.axes[0].get_title()))
    result = arena.run_arena(arena.make_world(SMALL), ["sft", "dpo"], seeds=2, n_iter=2)
    arena.plot_arena(result, str(tmp_path / "a.png"))
    (title,) = titles
    assert "random world, tabular policy, beta=0.1" in title
    assert "dots: final policy of each of 2 seed(s); thin lines: training path of the first seed" in title
