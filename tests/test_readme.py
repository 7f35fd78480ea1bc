"""Every example of the README runs as documented, on a base install plus only the extra
it names.

A base install is simulated in a subprocess: a ``sitecustomize`` module blocks the import of
every optional dependency (and of the test tools) except those of the extras an example
names, so an example that silently needs an extra fails here. Command-line examples run as
``python -m tabularpg ...`` in a scratch directory (their output files land there).
"""
import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()

#: extra -> top-level modules it installs (setup.cfg)
EXTRAS = {"plot": ["matplotlib"], "progress": ["tqdm"], "gym": ["gymnasium"], "mdptoolbox": ["mdptoolbox"],
          "parallel": ["joblib", "dask", "distributed", "pandas", "pyarrow"]}
TEST_TOOLS = ["pytest", "hypothesis", "mypy", "ruff"]

BLOCKER = textwrap.dedent('''
    import importlib.abc
    import os
    import sys

    _BLOCKED = set(filter(None, os.environ.get("TABULARPG_BLOCK", "").split(",")))

    class _Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in _BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
''')


def _blocked(extras):
    allowed = {m for e in extras for m in EXTRAS[e]}
    return sorted({m for ms in EXTRAS.values() for m in ms} - allowed) + TEST_TOOLS


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("site")
    (d / "sitecustomize.py").write_text(BLOCKER)
    return d


def _env(site, extras):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["TABULARPG_BLOCK"] = ",".join(_blocked(extras))
    return env


def cli_examples():
    """(command, extras) for every ``tabularpg ...`` line of the README's bash blocks."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            if not line.startswith("tabularpg "):
                continue
            cmd, _, comment = line.partition("#")
            assert "base install" in comment or "needs tabularpg[" in comment, f"example names no extra: {line}"
            extras = re.findall(r"tabularpg\[([a-z,]+)\]", comment)
            out.append((" ".join(cmd.split()), [e for x in extras for e in x.split(",")]))
    return out


EXAMPLES = cli_examples()


def test_readme_has_cli_examples():
    assert len(EXAMPLES) >= 5 and any(ex for _, ex in EXAMPLES) and any(not ex for _, ex in EXAMPLES)


@pytest.fixture(scope="module")
def ran(site, tmp_path_factory):
    """Start every example at once (interpreter start-up dominates), then collect."""
    procs = {}
    for cmd, extras in EXAMPLES:
        cwd = tmp_path_factory.mktemp("example")
        argv = [sys.executable, "-m", "tabularpg", *shlex.split(cmd)[1:]]
        procs[cmd] = (cwd, subprocess.Popen(argv, cwd=cwd, env=_env(site, extras), stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))
    out = {}
    for cmd, (cwd, p) in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        out[cmd] = (cwd, p.returncode, stdout, stderr)
    return out


@pytest.mark.parametrize("cmd,extras", EXAMPLES, ids=[c[:60] for c, _ in EXAMPLES])
def test_cli_example_runs_with_only_its_extra(cmd, extras, ran):
    cwd, rc, out, err = ran[cmd]
    assert rc == 0, (cmd, err[-2000:])
    assert "Traceback" not in err
    for path in re.findall(r"--plot (\S+)", cmd):
        assert (cwd / path).stat().st_size > 1000 and f"wrote {path}" in err


def test_missing_extra_is_refused_before_computing(site, tmp_path):
    """Without matplotlib, ``--plot`` stops at once with the pip line (no study is run)."""
    r = subprocess.run([sys.executable, "-m", "tabularpg", "study", "--mdp", "garnet:S=50,A=4,b=5,seed=0",
                        "--batch-sizes", "100000", "--plot", "s.png"], cwd=tmp_path, env=_env(site, []),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("--plot needs matplotlib, which is not installed; "
                                     "run: pip install 'tabularpg[plot]'")
    r = subprocess.run([sys.executable, "-m", "tabularpg", "solve", "--mdp", "gym:FrozenLake-v1"], cwd=tmp_path,
                       env=_env(site, ["plot"]), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install 'tabularpg[gym]'" in r.stderr


def test_python_examples_run_on_a_base_install(site, tmp_path):
    """The README's Python blocks, run in order in one interpreter with no extra."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", README, re.S))
    assert "import tabularpg" in code
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(site, []), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_exact_argument_rule_as_documented():
    """The README's rule for ``tabularpg.exact``: functions of the action probabilities take
    ``pi``; functions that differentiate take ``(policy, theta)``. Checked on the signatures."""
    import inspect

    from tabularpg import exact

    section = README.split("## Arguments of `tabularpg.exact`", 1)[1].split("\n## ", 1)[0]
    flat = " ".join(section.split())
    pi_group = re.search(r"takes `pi`, an `\(S, A\)` table \(([^)]*)\)", flat).group(1)
    theta_group = re.search(r"takes `\(policy, theta\)` \(([^)]*)\)", flat).group(1)
    pi_funcs, theta_funcs = re.findall(r"`(\w+)`", pi_group), re.findall(r"`(\w+)`", theta_group)
    assert {"evaluate", "objective"} <= set(pi_funcs) and {"policy_gradient", "fisher"} <= set(theta_funcs)
    for name in pi_funcs:
        params = list(inspect.signature(getattr(exact, name)).parameters)
        assert params[:2] == ["mdp", "pi"], (name, params)
    for name in theta_funcs:
        params = list(inspect.signature(getattr(exact, name)).parameters)
        assert params[:3] == ["mdp", "policy", "theta"], (name, params)
    public = {n for n in exact.__all__ if callable(getattr(exact, n)) and not isinstance(getattr(exact, n), type)}
    documented = set(pi_funcs) | set(theta_funcs)
    undocumented = {n for n in public - documented
                    if list(inspect.signature(getattr(exact, n)).parameters)[:1] == ["mdp"]}
    assert not undocumented, f"exact functions missing from the README's rule: {sorted(undocumented)}"


def test_all_extra_installs_every_optional_dependency():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    extras = {k: set(filter(None, v.split("\n"))) for k, v in cfg["options.extras_require"].items()}
    optional = set().union(*(extras[e] for e in EXTRAS))
    assert optional <= extras["all"] and "pymdptoolbox>=4.0b3" in extras["all"]
    # this test's map names every runtime extra; test, lint and docs are tool extras (pytest,
    # ruff, Sphinx, playwright ...), which `all` (what the package can use at run time) leaves out
    assert set(EXTRAS) == set(extras) - {"all", "test", "lint", "docs"}
    assert not {"sphinx>=7.2", "playwright>=1.40", "pytest>=7", "mypy>=1.10"} & extras["all"]
    assert {"mypy>=1.10", "ruff>=0.5"} <= extras["lint"]
