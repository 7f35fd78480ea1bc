r"""``tabularpg verify``: every exact identity, checked numerically on the built-in MDPs.

Each row states an identity, the MDP, what was measured (a relative error for the exact
rows, a test statistic for the Monte Carlo rows), the threshold it must not exceed, and
pass/fail; ``format_table(rows, wide=True)`` adds the formula of each row. The exact
rows use independent oracles (complex-step
derivatives of ``J``, central differences, the Bellman equations, brute-force sums);
the Monte Carlo rows (from :mod:`tabularpg._verify_mc`) compare estimators with their
exact expectations at a stated false-alarm rate.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from . import _validation as _v
from . import envs, exact
from .mdp import MDP
from .policies import LinearSoftmax, NeuralSoftmax, TabularSoftmax
from .testing.oracles import central_difference_gradient, complex_step_gradient, objective_of

__all__ = ["Check", "builtin_mdps", "exact_checks", "solver_checks", "run", "format_table"]

_H = 1e-30  # complex step


@dataclass(frozen=True)
class Check:
    """One verified identity: ``passed`` is ``error <= tolerance``.

    ``error`` is what was measured, named by ``measure``: a relative error for exact
    identities, a test statistic (chi-square, max ``|z|``) for Monte Carlo rows, whose
    ``tolerance`` is the statistic's critical value at the false-alarm rate ``alpha``."""

    section: str
    identity: str
    formula: str
    mdp: str
    error: float
    tolerance: float
    measure: str = "error"
    alpha: float | None = None

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def builtin_mdps() -> dict[str, MDP]:
    """The MDPs ``verify`` runs on: one of each kind (discounted, finite horizon,
    terminal with gamma = 1, bandit, gridworld)."""
    return {
        "two_state": envs.two_state(),
        "garnet(12,3,3)": envs.garnet(12, 3, 3, gamma=0.9, rng=0),
        "garnet(8,3,3),H=6": envs.garnet(8, 3, 3, gamma=0.95, rng=1).replace(horizon=6),
        "chain(6)": envs.chain(6),
        "gridworld(S&B 3.5)": envs.sutton_barto_gridworld(),
        "cliff_walking": envs.cliff_walking(),
        "bandit(1,.9,.1)": envs.bandit([1.0, 0.9, 0.1]),
    }


def _rel(x, y) -> float:
    x, y = np.asarray(x), np.asarray(y)
    return float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(y))), 1.0))


def _policies(mdp: MDP, rng):
    S, A = mdp.n_states, mdp.n_actions
    tab = TabularSoftmax(S, A)
    lin = LinearSoftmax(rng.normal(size=(S, A, 3)))
    net = NeuralSoftmax(rng.normal(size=(S, A, 3)), hidden=(4,))
    return [("tabular", tab, rng.normal(scale=0.5, size=tab.theta_shape)),
            ("linear", lin, rng.normal(scale=0.5, size=lin.theta_shape)),
            ("neural", net, net.init(rng))]


def _complex_step_grad(mdp, pol, theta):
    return complex_step_gradient(objective_of(mdp, pol), theta)


def _central_grad(mdp, pol, theta):
    return central_difference_gradient(objective_of(mdp, pol), theta)


def _bellman_residuals(mdp: MDP, pi, ev):
    keep = mdp.nonterminal
    if mdp.horizon is None:
        rv = ev.v - (mdp.expected_reward(pi) + mdp.gamma * (mdp.transition_matrix(pi) @ ev.v))
        rq = ev.q - (mdp.r_sa + mdp.gamma * mdp.next_state_expectation(ev.v)) * keep[:, None]
        rd = ev.d - (mdp.mu + mdp.gamma * (mdp.transition_matrix(pi).T @ ev.d))
    else:
        v_next = np.vstack([ev.v[1:], np.zeros((1, mdp.n_states))])
        rv = ev.v - np.sum(pi * ev.q, axis=-1)
        rq = ev.q - (mdp.r_sa + mdp.gamma * mdp.next_state_expectation(v_next.T).transpose(2, 0, 1)) * keep[:, None]
        d_prev = np.vstack([np.zeros((1, mdp.n_states)), ev.d[:-1]])
        mu_t = np.zeros_like(ev.d)
        mu_t[0] = mdp.mu
        rd = ev.d - (mu_t + mdp.gamma * (mdp.transition_matrix(pi).T @ d_prev.T).T)
    scale = max(1.0, float(np.max(np.abs(ev.v))))
    return [float(np.max(np.abs(r))) / scale for r in (rv, rq)] + [float(np.max(np.abs(rd)))]


_FULL_CHECK_PARAMS = 300  # above: directional checks along random directions


def _directional_checks(add, pname, mdp, pol, th, g, ppi, rng, n_dir: int = 4):
    """Large policies: the same identities along ``n_dir`` random directions ``v``
    (complex step of ``J`` and of ``log pi`` along ``v``), at O(n_dir) solves."""
    V = rng.normal(size=(n_dir,) + pol.theta_shape)
    dj = np.array([exact.objective(mdp, pol.probs(th + 1j * _H * v)).imag / _H for v in V])
    gv = np.array([np.sum(g * v) for v in V])
    add(f"policy gradient theorem ({pname}, {n_dir} directions)", "grad J . v = dJ(th + i h v)/h", _rel(gv, dj), 1e-9)
    jvp = pol.log_probs_jvp(th, V)                      # (n_dir, S, A): score . v
    cs = np.stack([pol.log_probs(th + 1j * _H * v).imag / _H for v in V])
    add(f"hand-derived score ({pname}, {n_dir} directions)", "score . v = d log pi(th + i h v)/h", _rel(jvp, cs), 1e-12)
    add(f"score has zero mean ({pname}, {n_dir} directions)", "sum_a pi(a|s) score . v = 0",
        float(np.max(np.abs(np.einsum("sa,ksa->ks", ppi, cs)))), 1e-12)


def exact_checks(mdps: dict[str, MDP] | None = None, *, seed: int = 0) -> list[Check]:
    """Exact identities on each MDP (see the module docstring); returns a list of :class:`Check`."""
    _v.check_problem(mdps=mdps, seed=seed)
    mdps = builtin_mdps() if mdps is None else mdps
    rng = np.random.default_rng(seed)
    rows = []
    for name, mdp in mdps.items():
        pols = _policies(mdp, rng)
        (_, tab, th_tab), (_, lin, th_lin) = pols[:2]
        pi = tab.probs(th_tab)
        ev = exact.analyze(mdp, pi)
        rv, rq, rd = _bellman_residuals(mdp, pi, ev)
        def add(ident, formula, err, tol, name=name):
            rows.append(Check("exact", ident, formula, name, float(err), tol))

        add("Bellman equation for V", "V = r_pi + gamma P_pi V", rv, 1e-10)
        add("Bellman equation for Q", "Q = r + gamma P V", rq, 1e-10)
        add("occupancy flow", "d = mu + gamma P_pi^T d", rd, 1e-10)
        add("objective two ways", "mu^T V = sum_t d_t^T r_pi",
            abs(ev.j - ev.d_total @ mdp.expected_reward(pi)) / max(1.0, abs(ev.j)), 1e-10)
        if not mdp.terminal.any():
            mass = (np.sum(ev.d) * (1 - mdp.gamma) - 1 if mdp.horizon is None
                    else _rel(ev.d.sum(axis=1), mdp.gamma ** np.arange(mdp.horizon)))
            add("occupancy mass", "sum_s d(s) = 1/(1-gamma)  (sum_s d_t(s) = gamma^t)", abs(mass), 1e-10)
        for pname, pol, th in pols:
            g = exact.policy_gradient(mdp, pol, th)
            ppi = pol.probs(th)
            if pol.n_params > _FULL_CHECK_PARAMS:
                _directional_checks(add, pname, mdp, pol, th, g, ppi, rng)
                continue
            add(f"policy gradient theorem ({pname})", "sum_s,a d pi Q grad log pi = dJ (complex step)",
                _rel(g, _complex_step_grad(mdp, pol, th)), 1e-9)
            if pname == "tabular" and pol.n_params <= 64:
                add(f"policy gradient vs central differences ({pname})", "(J(th+h)-J(th-h))/2h, h=1e-5",
                    _rel(g, _central_grad(mdp, pol, th)), 1e-6)
            S, A = mdp.n_states, mdp.n_actions
            s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
            score = pol.score(th, s, a).reshape(S, A, -1)
            add(f"score has zero mean ({pname})", "sum_a pi(a|s) grad log pi(a|s) = 0",
                float(np.max(np.abs(np.einsum("sa,sap->sp", ppi, score)))), 1e-12)
            cs = np.stack([pol.log_probs(th + 1j * _H * e.reshape(th.shape)).imag / _H
                           for e in np.eye(pol.n_params)], axis=-1)
            add(f"hand-derived score ({pname})", "score = d log pi / d theta (complex step)",
                _rel(score, cs), 1e-12)
            d_tot = exact.analyze(mdp, ppi).d_total
            F_brute = np.einsum("s,sa,sap,saq->pq", d_tot, ppi, score, score)
            add(f"Fisher matrix ({pname})", "F = sum_s d(s) E_pi[score score^T]",
                _rel(exact.fisher(mdp, pol, th), F_brute), 1e-10)
        if mdp.horizon is None and tab.n_params <= _FULL_CHECK_PARAMS:
            npg = exact.natural_gradient(mdp, tab, th_tab)
            diff = (npg - ev.advantage)[ev.d > 1e-10]
            add("natural gradient = advantage (tabular)", "F^+ grad J = A(s,.) + c(s)  (Kakade 2001)",
                float(np.max(np.ptp(diff, axis=1))) / max(1.0, float(np.max(np.abs(ev.advantage)))), 1e-7)
    return rows


def solver_checks(mdps: dict[str, MDP] | None = None) -> list[Check]:
    """Value iteration, policy iteration and the LP agree on ``V*`` (and V* >= V_pi)."""
    _v.check_problem(mdps=mdps)
    from . import solve

    mdps = builtin_mdps() if mdps is None else mdps
    rows = []
    for name, mdp in mdps.items():
        vi = solve.value_iteration(mdp)
        pi_ = solve.policy_iteration(mdp)
        lp = solve.linear_program(mdp)
        scale = max(1.0, float(np.max(np.abs(pi_.v))))
        err = max(float(np.max(np.abs(vi.v - pi_.v))), float(np.max(np.abs(lp.v - pi_.v)))) / scale
        rows.append(Check("solvers", "value iteration = policy iteration = LP", "V* (sup norm)", name, err, 1e-7))
    return rows


def run(*, seed: int = 0, monte_carlo: bool = True, quick: bool = True,
        mdps: dict[str, MDP] | None = None) -> list[Check]:
    """All rows: exact identities, solver agreement, and (optionally) Monte Carlo rows.

    ``mdps`` (name -> MDP) replaces the built-ins for every row, the Monte Carlo rows
    included (on short truncations of those MDPs; see :mod:`tabularpg._verify_mc`)."""
    _v.check_problem(seed=seed, monte_carlo=monte_carlo, quick=quick, mdps=mdps)
    rows = exact_checks(mdps, seed=seed) + solver_checks(mdps)
    if mdps is None:  # recursion = enumeration on small MDPs of its own (enumerable)
        from .moments import recursion_checks

        rows += [Check("moments", r["identity"], r["formula"], r["mdp"], r["error"], r["tolerance"])
                 for r in recursion_checks(seed=seed)]
    if monte_carlo:
        from ._verify_mc import monte_carlo_rows

        for r in monte_carlo_rows(seed=seed, quick=quick, mdps=mdps):
            rows.append(Check("monte carlo", r["identity"], r["formula"], r["mdp"],
                              float(r["statistic"]), float(r["threshold"]), r.get("measure", "statistic"),
                              r.get("alpha")))
    return rows


_SECTIONS = {"exact": "Exact identities (relative error against an independent oracle)",
             "solvers": "Optimal values (three solvers agree)",
             "moments": "Exact moments (backward recursion against trajectory enumeration, relative error)",
             "monte carlo": "Monte Carlo estimators against their exact expectations "
                            "(test statistic against its critical value)"}


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(rows: Iterable[Check], *, wide: bool = False) -> str:
    """A plain-text report: one block per section (a title, a header, one line per row and
    a summary line), then the total. Lines fit in 120 columns unless ``wide``, which adds
    the formula column.

    The ``measured`` column names what was measured: ``rel. error`` for exact rows, the
    statistic (``chi2``, ``max|z|``) for Monte Carlo rows; ``must be <=`` is the tolerance
    or the critical value at the stated false-alarm rate ``alpha``.
    """
    rows = list(rows)
    widths = {"identity": 50, "mdp": 26, "measured": 20, "limit": 14} if not wide else None
    out = []
    for section in dict.fromkeys(r.section for r in rows):
        sec = [r for r in rows if r.section == section]
        body = []
        for r in sec:
            label = "rel. error" if r.measure == "error" else r.measure
            measured = f"{label} {r.error:.3g}" if r.measure != "error" else f"{label} {r.error:.2e}"
            limit = f"{r.tolerance:.3g}" + (f" (a={r.alpha:g})" if r.alpha is not None else "")
            cells = [r.identity, r.mdp] + ([r.formula] if wide else []) + [measured, limit,
                                                                            "pass" if r.passed else "FAIL"]
            if widths is not None:
                cells = [_clip(c, w) for c, w in zip(cells, widths.values())] + cells[len(widths):]
            body.append(cells)
        head = ["identity", "MDP"] + (["formula"] if wide else []) + ["measured", "must be <=", "result"]
        w = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
        def line(x, w=w):
            return "  ".join(c.ljust(k) for c, k in zip(x, w)).rstrip()

        n_fail = sum(not r.passed for r in sec)
        out += [f"== {_SECTIONS.get(section, section)}", line(head), line(["-" * k for k in w])]
        out += [line(b) for b in body]
        def ratio_of(r):
            return r.error / r.tolerance if r.tolerance > 0 else (0.0 if r.error <= 0 else float("inf"))

        worst = max(sec, key=ratio_of)
        ratio = ratio_of(worst)
        lead = f"-- {section}: {len(sec) - n_fail} passed, {n_fail} failed; largest measured/limit {ratio:.2g}: "
        where = f" on {_clip(worst.mdp, 26)}"
        # clip the identity only as far as the 120 columns need (unless --wide)
        room = max(20, 120 - len(lead) - len(where)) if not wide else len(worst.identity)
        out.append(lead + _clip(worst.identity, room) + where)
        out.append("")
    n_fail = sum(not r.passed for r in rows)
    out.append(f"{len(rows) - n_fail} passed, {n_fail} failed")
    return "\n".join(out)
