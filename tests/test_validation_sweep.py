"""Sweeps refuse bad arguments and bad destinations before their first task; a sweep that
fails mid-way keeps what its journal holds; the journal reader refuses foreign files."""
import json

import numpy as np
import pytest
from _bad_inputs import Bad, T, V, int_, obj, rows_for, run_param, seq

from tabularpg import sweep
from tabularpg._validation import FileFormatError, MissingFileError

TASKS = sweep.grid(["two_state"], ["reinforce"], [5, 6], horizon=3)
CALLS = []


def counting(task, seed_seq):
    CALLS.append(task.index)
    return {"index": task.index, "x": float(np.random.default_rng(seed_seq).random())}


ROWS = (
    rows_for("grid", sweep.grid, (["two_state"], ["reinforce"], [5]), {}, {
        "mdps": seq() + Bad(("empty", [], V), ("non-string", [3], T)),
        "estimators": seq() + Bad(("empty", [], V), ("unknown", ["nope"], V), ("non-string", [1], T)),
        "batch_sizes": Bad(("int", 5, T), ("str", "5", T), ("float-item", [2.5], T), ("zero", [0], V)),
        "repeats": int_(1), "horizon": int_(1, none=True), "theta_seed": int_(0)})
    + rows_for("run_sweep", sweep.run_sweep, (TASKS,), {"task_fn": counting}, {
        "tasks": Bad(("str", "two_state", T), ("ints", [1, 2], T), ("int", 3, T)),
        "task_fn": Bad(("str", "f", T)),
        "backend": Bad(("unknown", "threads", V)),
        "n_jobs": int_(-1) + Bad(("zero", 0, V)), "seed": int_(0),
        "journal": Bad(("int", 3, T)),
        "progress": Bad(("str", "tqdm", T)),
        "out": Bad(("xlsx", "res.xlsx", V), ("int", 3, T), ("missing-dir", "/nonexistent/dir/res.csv", V))})
    + rows_for("write_table", sweep.write_table, ([{"a": 1}], "t.csv"), {}, {
        "rows": Bad(("str", "abc", T), ("non-dict", [1], T)), "path": Bad(("xlsx", "t.xlsx", V), ("int", 3, T))})
    + rows_for("to_dataframe", sweep.to_dataframe, ([{"a": 1}],), {},
               {"rows": Bad(("str", "abc", T), ("non-dict", [1], T))})
    + rows_for("task_dict", sweep.task_dict, (TASKS[0],), {}, {"task": obj()})
    + rows_for("study_task", sweep.study_task, (TASKS[0], np.random.SeedSequence(0)), {}, {
        "task": obj(), "seed_seq": Bad(("int", 3, T), ("str", "s", T))})
    + rows_for("cell_seed", sweep.cell_seed, (TASKS[0], 0), {}, {"seed": int_(0)})
    + rows_for("read_journal", sweep.read_journal, ("j.jsonl",), {}, {"path": Bad(("int", 3, T))})
)


@pytest.mark.parametrize("fn, call, error, words", ROWS)
def test_bad_argument(fn, call, error, words):
    CALLS.clear()
    run_param(fn, call, error, words)
    assert CALLS == [], "a refused sweep ran a task"


def test_every_public_function_has_rows():
    covered = {r.id.split("-")[0] for r in ROWS}
    functions = {n for n in sweep.__all__ if callable(getattr(sweep, n)) and not isinstance(getattr(sweep, n), type)}
    assert functions - covered == set()


@pytest.mark.parametrize("where", ["out", "journal"])
def test_bad_destination_fails_before_the_first_task(tmp_path, where):
    CALLS.clear()
    bad = {"out": tmp_path / "missing" / "res.csv", "journal": tmp_path / "missing" / "j.jsonl"}[where]
    with pytest.raises(V, match=f"`{where}`.*does not exist"):
        sweep.run_sweep(TASKS, task_fn=counting, **{where: bad})
    assert CALLS == []
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(V, match="`out`.*is a directory"):
        sweep.run_sweep(TASKS, task_fn=counting, out=tmp_path / "dir.csv")
    assert CALLS == []


def test_sweep_failing_midway_keeps_its_journal(tmp_path):
    journal = tmp_path / "j.jsonl"

    def fails_on_second(task, seed_seq):
        if task.index == 1:
            raise RuntimeError("task 1 exploded")
        return counting(task, seed_seq)

    with pytest.raises(RuntimeError, match="exploded"):
        sweep.run_sweep(TASKS, task_fn=fails_on_second, journal=journal, out=tmp_path / "t.csv")
    assert sorted(sweep.read_journal(journal)) == [0]
    CALLS.clear()
    rows = sweep.run_sweep(TASKS, task_fn=counting, journal=journal)
    assert CALLS == [1] and [r["index"] for r in rows] == [0, 1]


def test_journal_line_cut_short_does_not_swallow_the_next_entry(tmp_path):
    journal = tmp_path / "j.jsonl"
    sweep.run_sweep(TASKS[:1], task_fn=counting, journal=journal)
    with journal.open("a") as f:
        f.write('{"index": 1, "ro')  # killed mid-write, no newline
    with pytest.warns(UserWarning, match="not valid JSON"):
        sweep.run_sweep(TASKS, task_fn=counting, journal=journal)
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert sorted(sweep.read_journal(journal)) == [0, 1]


def test_journal_reader_refuses_foreign_files(tmp_path):
    with pytest.raises(MissingFileError, match="nope.jsonl"):
        sweep.read_journal(tmp_path / "nope.jsonl")
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"name": "x"}) + "\n")
    with pytest.raises(FileFormatError, match="foreign.jsonl.*not a journal entry"):
        sweep.read_journal(foreign)
    CALLS.clear()
    with pytest.raises(FileFormatError, match="foreign.jsonl"):
        sweep.run_sweep(TASKS, task_fn=counting, journal=foreign)
    assert CALLS == []
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    with pytest.warns(UserWarning), pytest.raises(FileFormatError, match="no valid line"):
        sweep.read_journal(text)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(FileFormatError, match="not text"):
        sweep.read_journal(binary)
