"""Sweeps: bit-identical results across backends, resumability, tidy output.

Oracles: the sequential backend (the other backends must reproduce its rows bit for bit);
the call log of a task function (finished tasks are not rerun); the worker's process id
(journal rows are reused, not recomputed, on another backend); for ``study_task``, the
exact expectation, gradient and covariance it reports against their sampled counterparts.
"""
import json
import math
import os

import numpy as np
import pytest

from tabularpg import sweep

TASKS = sweep.grid(["garnet:S=4,A=2,b=2,seed=0", "two_state"], ["reinforce", "gae"], [30, 60], repeats=2, horizon=5)


def _same(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        assert a.keys() == b.keys()
        for k in a:
            x, y = a[k], b[k]
            assert (isinstance(x, float) and math.isnan(x) and math.isnan(y)) or x == y, (k, x, y)


def draw(task, seed_seq):
    """A cheap task: a few numbers from the task's generator and the worker's process id."""
    x = np.random.Generator(np.random.PCG64(seed_seq)).standard_normal(3)
    return {"index": task.index, "x0": float(x[0]), "sum": float(x.sum()), "pid": os.getpid()}


def test_backends_are_bit_identical():
    seq = sweep.run_sweep(TASKS, backend="sequential", seed=7)
    par = sweep.run_sweep(TASKS, backend="joblib", n_jobs=2, seed=7)
    _same(seq, par)
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cl:
        with distributed.Client(cl) as client:
            dsk = sweep.run_sweep(TASKS, backend="dask", client=client, seed=7)
        # by scheduler address, with a cheap task function and one worker fewer
        by_address = sweep.run_sweep(TASKS, task_fn=draw, backend="dask", address=cl.scheduler_address, seed=7)
    _same(seq, dsk)
    one_worker = sweep.run_sweep(TASKS, task_fn=draw, backend="processes", n_jobs=1, seed=7)
    assert [r["sum"] for r in by_address] == [r["sum"] for r in one_worker]
    # not vacuous: a different root seed changes the numbers
    assert sweep.run_sweep(TASKS[:1], seed=8)[0]["checksum"] != seq[0]["checksum"]


def test_task_seed_depends_only_on_its_content():
    full = sweep.run_sweep(TASKS, seed=3)
    part = sweep.run_sweep(TASKS[5:7], seed=3)
    _same(full[5:7], part)
    assert full[5]["checksum"] == sweep.study_task(TASKS[5], sweep.cell_seed(TASKS[5], 3))["checksum"]


def test_superset_grid_gives_identical_shared_cells():
    """Adding estimators and batch sizes to a grid moves every cell's index but changes
    none of its numbers; the same cell under another sweep seed does change (power)."""
    small = sweep.grid(["two_state"], ["reinforce"], [20, 40], repeats=2, horizon=3)
    big = sweep.grid(["two_state", "chain:S=3"], ["gae", "reinforce"], [10, 20, 30, 40], repeats=3, horizon=3)
    a = sweep.run_sweep(small, seed=5)
    b = {(r["mdp"], r["estimator"], r["n_episodes"], r["repeat"]): r for r in sweep.run_sweep(big, seed=5)}
    shared = [b[(r["mdp"], r["estimator"], r["n_episodes"], r["repeat"])] for r in a]
    assert [r["index"] for r in shared] != [r["index"] for r in a]
    _same([{k: v for k, v in r.items() if k != "index"} for r in a],
          [{k: v for k, v in r.items() if k != "index"} for r in shared])
    assert [r["checksum"] for r in sweep.run_sweep(small, seed=6)] != [r["checksum"] for r in a]
    assert len({r["checksum"] for r in a}) == len(a)  # repeats and sizes draw different batches


def test_backend_names_match_libraries():
    assert sweep.BACKENDS == ("sequential", "joblib", "dask")
    rows = sweep.run_sweep(TASKS[:2], backend="joblib", n_jobs=1, seed=1)
    _same(rows, sweep.run_sweep(TASKS[:2], backend="processes", n_jobs=1, seed=1))  # documented alias


CALLS = []


def flaky(task, seed_seq):
    """Raises once at index 3 (simulating an interruption); logs every call in CALLS."""
    CALLS.append(task.index)
    if task.index == 3 and CALLS.count(3) == 1:
        raise KeyboardInterrupt("interrupted")
    return draw(task, seed_seq)


def test_resume_skips_finished_tasks(tmp_path):
    journal = tmp_path / "sweep.jsonl"
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(TASKS, task_fn=flaky, journal=journal)
    assert sorted(sweep.read_journal(journal)) == [0, 1, 2]
    rows = sweep.run_sweep(TASKS, task_fn=flaky, journal=journal)
    calls = CALLS
    assert calls == [0, 1, 2, 3] + list(range(3, len(TASKS)))  # 0..2 were not recomputed
    assert [r["index"] for r in rows] == list(range(len(TASKS)))
    fresh = sweep.run_sweep(TASKS, task_fn=draw)
    assert [r["sum"] for r in rows] == [r["sum"] for r in fresh]
    lines = journal.read_text().splitlines()
    assert len(lines) == len(TASKS) and json.loads(lines[0])["row"]["index"] == 0
    # a finished sweep reruns nothing
    n = len(calls)
    sweep.run_sweep(TASKS, task_fn=flaky, journal=journal)
    assert len(calls) == n


def test_resume_on_another_backend_reuses_journal_rows(tmp_path):
    journal = tmp_path / "sweep.jsonl"
    sweep.run_sweep(TASKS[:3], task_fn=draw, journal=journal, seed=1)
    rows = sweep.run_sweep(TASKS, task_fn=draw, backend="processes", n_jobs=2, journal=journal, seed=1)
    pids = [r["pid"] for r in rows]
    assert pids[:3] == [os.getpid()] * 3 and os.getpid() not in pids[3:]
    assert len(journal.read_text().splitlines()) == len(TASKS)


def test_journal_of_another_sweep_is_refused(tmp_path):
    journal = tmp_path / "sweep.jsonl"
    sweep.run_sweep(TASKS[:2], task_fn=draw, journal=journal, seed=1)
    with pytest.raises(ValueError, match="use a new journal"):
        sweep.run_sweep(TASKS[:2], task_fn=draw, journal=journal, seed=2)
    other = sweep.grid(["two_state"], ["reinforce"], [30, 60], horizon=5)
    with pytest.raises(ValueError, match="use a new journal"):
        sweep.run_sweep(other, task_fn=draw, journal=journal, seed=1)
    with journal.open("a") as f:  # a line cut short by a kill is ignored with a warning
        f.write('{"index": 5, "ke')
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert sorted(sweep.read_journal(journal)) == [0, 1]


@pytest.mark.parametrize("kwargs,match", [
    ({"backend": "threads"}, "`backend` must be one of"),
    ({"backend": "dask"}, "needs a `client` or a scheduler `address`"),
    ({"n_jobs": -2}, "n_jobs"),
], ids=["backend", "dask-without-client", "n_jobs"])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweep.run_sweep(TASKS, task_fn=draw, **kwargs)


def test_duplicate_indices_are_refused():
    with pytest.raises(ValueError, match="distinct non-negative int `index`"):
        sweep.run_sweep(TASKS[:1] * 2, task_fn=draw)


def test_tables(tmp_path):
    rows = sweep.run_sweep(TASKS[:4], out=tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[0].startswith("index,mdp,estimator")
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(tmp_path / "t.csv")
    assert df.shape == (4, len(rows[0])) and list(df["checksum"]) == [r["checksum"] for r in rows]
    assert sweep.to_dataframe(rows)["estimator"].tolist() == ["reinforce"] * 4
    pytest.importorskip("pyarrow")
    sweep.write_table(rows, tmp_path / "t.parquet")
    df = pd.read_parquet(tmp_path / "t.parquet")
    assert list(df["index"]) == [0, 1, 2, 3] and list(df["checksum"]) == [r["checksum"] for r in rows]
    with pytest.raises(ValueError, match="must end in .csv or .parquet"):
        sweep.write_table(rows, tmp_path / "t.txt")


def test_study_rows_are_sane():
    rows = sweep.run_sweep(sweep.grid(["two_state"], ["reward_to_go", "reward_to_go_undiscounted"], [4000], horizon=4))
    r = rows[0]  # unbiased: exact expectation = grad J, sampled statistics consistent with it
    assert r["bias_exact_norm"] == 0.0 and r["expected_norm"] == r["grad_norm"] > 0
    assert r["bias_p"] > 1e-6 and r["bias_z"] < 5
    assert abs(r["var_sampled"] / r["var_exact"] - 1) < 0.2 and r["cosine"] > 0.9
    b = rows[1]  # dropping gamma^t: biased, and the sample agrees with the predicted (biased) expectation
    assert b["bias_exact_norm"] > 0.05 and b["bias_p"] > 1e-6 and b["bias_z"] < 5
    assert b["mse"] > b["bias_exact_norm"] ** 2 / 2


def test_gymnasium_specs():
    pytest.importorskip("gymnasium")
    r = sweep.run_sweep(sweep.grid(["gym:FrozenLake-v1"], ["reward_to_go"], [200], horizon=10))[0]
    assert r["horizon"] == 10 and r["bias_exact_norm"] == 0.0 and r["grad_norm"] > 0


def test_cell_key_tells_large_option_arrays_apart():
    """Two baselines that differ only in the middle of a large array are different cells."""
    a, b = np.zeros(5000), np.zeros(5000)
    b[2500] = 1.0
    assert repr(a) == repr(b)  # numpy elides the middle: repr cannot tell them apart
    ta = sweep.Task(0, "two_state", "reinforce", 10, 0, options={"baseline": a})
    tb = sweep.Task(0, "two_state", "reinforce", 10, 0, options={"baseline": b})
    assert sweep.cell_seed(ta, 0).spawn_key != sweep.cell_seed(tb, 0).spawn_key
