r"""The RLHF pipeline on a world, and one training loop per algorithm with exact metrics
at every iteration.

Stages (:func:`prepare`), as in RLHF practice (Stiennon et al. 2020; Ouyang et al. 2022):

1. demonstrations from a demonstrator :math:`\pi_{demo} = \mathrm{softmax}(r/T)` (the
   human writers), SFT by maximum likelihood: :math:`\pi_{ref}`;
2. preference pairs from :math:`\pi_{ref}` labeled by the true Bradley-Terry law
   (:func:`tabularpg.optim.sample_preferences`), a reward model :math:`\hat r` fitted to them;
3. policy optimization of :math:`J_\beta = E_\pi[\hat r] - \beta KL(\pi\|\pi_{ref})` from
   :math:`\pi_{ref}` (:func:`train`); DPO uses the same pairs and the same :math:`\beta`.

The judge is the true reward: win rates are exact Bradley-Terry probabilities
(:func:`~tabularpg.rlhf.world.win_rate`) against :math:`\pi_{ref}` and against the
demonstrator (the "human reference" of summarization benchmarks).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import objectives, optim
from .._validation import (
    ArgumentTypeError,
    NumericalError,
    ValidationError,
    as_rng,
    check_float,
    check_int,
)
from ..policies import LinearSoftmax, Policy, TabularSoftmax
from .reward_model import (
    FitResult,
    RewardModel,
    fit_reward_model,
    sample_demonstrations,
    sft,
)
from .updates import group_weights, rebel_step, sample_groups
from .world import KLProblem, Metrics, World, _parse_items, demonstrator, evaluate

__all__ = ["SETTINGS", "Pipeline", "Run", "parse_algorithm", "prepare", "train"]


@dataclass(frozen=True, eq=False)
class Pipeline:
    """Everything the algorithms share: the ``world``, the ``policy`` class, SFT's
    ``theta_ref`` and ``pi_ref`` (X, Y), the demonstrator ``pi_demo``, the ``demos`` and
    preference ``prefs``, the ``reward_model``, the ``problem`` (:math:`J_\\beta` of the
    reward model) and its optimum ``pi_star`` (X, Y), and the SFT fit ``sft_fit``."""

    world: World
    policy: Policy
    theta_ref: np.ndarray
    pi_ref: np.ndarray
    pi_demo: np.ndarray
    demos: tuple
    prefs: tuple
    reward_model: RewardModel
    problem: KLProblem
    pi_star: np.ndarray
    sft_fit: FitResult

    def metrics(self, theta, opponent=None) -> Metrics:
        """Exact metrics of ``policy.probs(theta)``; ``win_rate_opponent`` is against
        ``opponent`` (X, Y), default the demonstrator."""
        return evaluate(self.world, self.problem, self.policy.probs(theta),
                        opponent=self.pi_demo if opponent is None else opponent, optimum=self.pi_star)


def _make_policy(world, policy):
    if isinstance(policy, Policy):
        if (policy.n_states, policy.n_actions) != world.shape:
            raise ValidationError(f"`policy` must have (n_states, n_actions) = {world.shape}; "
                                  f"got {(policy.n_states, policy.n_actions)}")
        return policy
    if policy == "tabular":
        return TabularSoftmax(*world.shape)
    if policy == "linear":
        return LinearSoftmax(world.features)
    raise ValidationError(f"`policy` must be 'tabular', 'linear' or a Policy; got {policy!r}")


def prepare(world: World, *, policy="tabular", beta: float = 0.1, n_demos: int = 400, n_pairs: int = 2000,
            demo_temperature: float = 1.0, sft_l2: float = 0.02, rm_l2: float = 1e-3, reward_model: str = "same",
            rng=0) -> Pipeline:
    r"""Run SFT and reward modeling on ``world``.

    Parameters
    ----------
    policy : {"tabular", "linear"} or Policy
        The policy class (linear uses ``world.features``).
    beta : float
        KL coefficient of the RL stage and of DPO, > 0.
    n_demos, n_pairs : int
        Demonstrations for SFT; preference pairs for the reward model and DPO.
    demo_temperature : float
        ``T`` of the demonstrator :math:`\mathrm{softmax}(r/T)`.
    sft_l2, rm_l2 : float
        L2 penalties of SFT and of the reward model.
    reward_model : {"same", "tabular", "linear"}
        "same" follows ``policy`` (tabular policy: tabular reward model).
    rng : Generator or int
    """
    if not isinstance(world, World):
        raise ArgumentTypeError(f"`world` must be a World; got {type(world).__name__}")
    pol = _make_policy(world, policy)
    beta = check_float(beta, "beta")
    if beta <= 0:
        raise ValidationError(f"`beta` must be > 0; got {beta}")
    if reward_model not in ("same", "tabular", "linear"):
        raise ValidationError(f"`reward_model` must be 'same', 'tabular' or 'linear'; got {reward_model!r}")
    rng = as_rng(rng)
    pi_demo = demonstrator(world, demo_temperature)
    demos = sample_demonstrations(world.mu, pi_demo, n_demos, rng=rng)
    fit = sft(pol, demos, l2=sft_l2)
    pi_ref = pol.probs(fit.theta)
    prefs = optim.sample_preferences(world.reward, pi_ref, world.mu, check_int(n_pairs, "n_pairs", minimum=1),
                                     rng=rng)
    linear_rm = reward_model == "linear" or (reward_model == "same" and isinstance(pol, LinearSoftmax))
    rm = fit_reward_model(prefs, world.shape, features=world.features if linear_rm else None, l2=rm_l2)
    problem = KLProblem(world.mu, rm.table, pi_ref, beta, length=world.length)
    return Pipeline(world=world, policy=pol, theta_ref=fit.theta, pi_ref=pi_ref, pi_demo=pi_demo, demos=demos,
                    prefs=prefs, reward_model=rm, problem=problem, pi_star=problem.optimum(), sft_fit=fit)


@dataclass(frozen=True, eq=False)
class Run:
    """One training run: ``label``, final ``theta``, ``history`` (dict of (n_iter + 1,)
    arrays, one per :class:`Metrics` field), ``n_iter``, ``seconds``, ``responses`` drawn."""

    label: str
    theta: np.ndarray
    history: dict
    n_iter: int
    seconds: float
    responses: int

    @property
    def final(self) -> dict:
        return {k: float(v[-1]) for k, v in self.history.items()}


#: Default hyperparameters per table entry and policy class, tuned on the default world
#: (50 prompts x 8 responses, beta = 0.1). ``lr`` is the step on ``theta``; every
#: iteration draws ``n_prompts`` prompts and ``k`` responses to each.
SETTINGS = {
    "sft": {},
    "dpo": {"lr": 400.0},
    "reinforce": {"k": 1, "lr": 20.0, "baseline_decay": 0.9},
    "ppo": {"k": 1, "lr": 20.0, "epochs": 4, "clip": 0.2, "critic_lr": 0.5},
    "rloo": {"k": 2, "lr": 20.0},
    "rebel": {"k": 2, "eta": 3.0},
    "grpo": {"k": 4, "lr": 100.0, "epochs": 1, "clip": 0.2},
    "dr_grpo": {"k": 4, "lr": 40.0, "epochs": 1, "clip": 0.2},
}
_LINEAR_LR = 0.02  # linear policies: lr multiplier relative to the tabular defaults


def parse_algorithm(spec: str):
    """``"rloo:k=4"`` -> ``("rloo", {"k": 4})``; options as in :data:`SETTINGS`."""
    if not isinstance(spec, str):
        raise ArgumentTypeError(f"`algorithm` must be a string; got {type(spec).__name__}")
    name, _, rest = spec.partition(":")
    if name not in SETTINGS:
        raise ValidationError(f"`algorithm`: unknown {name!r}; valid: {', '.join(SETTINGS)}")
    converters = {key: type(default) for key, default in SETTINGS[name].items()}
    return name, _parse_items(rest, converters, "algorithm", repr(name), "option")


def _label(name, opts):
    return f"rloo (k={opts['k']})" if name == "rloo" else name


class _Recorder:
    """Exact metrics of every iterate; a non-finite iterate stops the run with a
    :class:`~tabularpg.NumericalError` naming the algorithm, the iteration and the step."""

    def __init__(self, pipe, theta, opponent, label, step_name, step):
        self.pipe, self.opponent = pipe, opponent
        self.label, self.step_name, self.step = label, step_name, step
        self.rows = [pipe.metrics(theta, opponent)]

    def add(self, theta):
        if not np.all(np.isfinite(theta)):
            it = len(self.rows)
            err = NumericalError(f"{self.label}: at iteration {it} with {self.step_name} = {self.step}: theta has "
                                 f"{int(np.sum(~np.isfinite(theta)))} non-finite entries; the run stops here "
                                 f"(a smaller {self.step_name} may help)")
            err.algorithm, err.iteration, err.step_size = self.label, it, self.step
            raise err
        self.rows.append(self.pipe.metrics(theta, self.opponent))

    def history(self):
        return {f: np.array([getattr(m, f) for m in self.rows]) for f in Metrics.__dataclass_fields__}


def _surrogate_epochs(pipe, theta_old, batch, adv, *, lr, epochs, clip, kl_weight=None):
    """``epochs`` ascent steps on the clipped surrogate of ``adv`` (N, 1) from ``theta_old``:
    weights :func:`tabularpg.objectives.sample_surrogate_weights` (+ ``kl_weight(theta)``
    per response) contracted and divided by N."""
    pol = pipe.policy
    pi_old = pol.probs(theta_old)
    s, a = batch.states[:, 0], batch.actions[:, 0]
    N = batch.n_episodes
    theta = theta_old
    for _ in range(epochs):
        w = objectives.sample_surrogate_weights(batch, pol, theta, pi_old, adv, clip=clip)[:, 0]
        if kl_weight is not None:
            w = w + kl_weight(theta, s, a)
        if not np.all(np.isfinite(w)):              # overflowed weights: the step is undefined,
            return theta + np.nan                   # and the caller refuses the iterate, naming it
        theta = theta + lr * pol.contract(theta, s, w / N, a)
        if not np.all(np.isfinite(theta)):
            break                                   # diverged: the caller refuses the iterate
    return theta


def train(pipe: Pipeline, algorithm: str, *, n_iter: int = 100, n_prompts=None, rng=0, opponent=None,
          **options) -> Run:
    r"""Train one algorithm from :math:`\pi_{ref}` and record exact metrics at every iteration.

    Parameters
    ----------
    pipe : Pipeline
    algorithm : str
        A key of :data:`SETTINGS`, optionally with options (``"rloo:k=4"``).
    n_iter : int
        Iterations (``sft``: none; its L-BFGS count is reported).
    n_prompts : int, optional
        Prompts per iteration (default: the number of prompts X).
    rng : Generator or int
    opponent : ndarray of shape (X, Y), optional
        A policy to win against at every iteration (``history["win_rate_opponent"]``);
        default the demonstrator.
    **options
        Override :data:`SETTINGS` (``lr``, ``k``, ``epochs``, ``clip``, ``eta``, ...).

    Returns
    -------
    Run

    Raises
    ------
    NumericalError
        When an iterate becomes non-finite (a step too large for the problem); the message
        names the algorithm, the iteration and the step size.

    Notes
    -----
    * ``reinforce``: one step along :func:`~tabularpg.rlhf.updates.sampled_update`'s weights
      with a moving-average baseline of :math:`R` (Ahmadian et al. 2024);
    * ``ppo``: KL-penalized reward :math:`R = \hat r - \beta\log(\pi_{old}/\pi_{ref})`, advantage
      :math:`R - V(x)` with a tabular critic updated by ``critic_lr`` toward the batch's rewards,
      ``epochs`` steps on the clipped surrogate;
    * ``rloo``, ``grpo``, ``dr_grpo``: group weights; ``grpo``/``dr_grpo`` with ``epochs > 1``
      take clipped-ratio steps and recompute the k3 term at each epoch;
    * ``rebel``: :func:`~tabularpg.rlhf.updates.rebel_step` on the pairs;
    * ``dpo``: full-batch gradient descent on :func:`tabularpg.optim.dpo_loss` over ``pipe.prefs``.
    """
    if not isinstance(pipe, Pipeline):
        raise ArgumentTypeError(f"`pipe` must be a Pipeline; got {type(pipe).__name__}")
    name, opts = parse_algorithm(algorithm)
    settings = dict(SETTINGS[name])
    if isinstance(pipe.policy, LinearSoftmax) and "lr" in settings:
        settings["lr"] *= _LINEAR_LR  # defaults only; an lr passed in the spec or options is used as given
    unknown = set(options) - set(settings)
    if unknown:
        raise ValidationError(f"unknown option(s) {sorted(unknown)} for {name!r}; options: {sorted(settings)}")
    settings.update(opts)
    settings.update(options)
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    prob, pol = pipe.problem, pipe.policy
    n = prob.shape[0] if n_prompts is None else check_int(n_prompts, "n_prompts", minimum=1)
    rng = as_rng(rng)
    label = _label(name, settings)
    t0 = time.perf_counter()
    theta = np.array(pipe.theta_ref, dtype=float, copy=True)
    step_name = "eta" if name == "rebel" else "lr"
    rec = _Recorder(pipe, theta, opponent, label, step_name, settings.get(step_name))
    if name == "sft":
        return Run(label, theta, rec.history(), pipe.sft_fit.n_iter, time.perf_counter() - t0, 0)
    # overflow in a diverging step is not warned about: _Recorder.add refuses the non-finite iterate
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "dpo":
            lr = check_float(settings["lr"], "lr", low=0.0)
            for _ in range(n_iter):
                _, g = optim.dpo_loss(pol, theta, pipe.pi_ref, pipe.prefs, beta=prob.beta)
                theta = theta - lr * g
                rec.add(theta)
            return Run(label, theta, rec.history(), n_iter, time.perf_counter() - t0, 0)
        k = check_int(settings["k"], "k", minimum=1)
        log_ref = np.log(prob.pi_ref)
        lengths = prob.length if prob.length is not None else np.ones(prob.shape, dtype=int)
        baseline = 0.0
        critic = np.sum(prob.pi_ref * prob.reward, axis=1)  # V(x) of pi_ref under the reward model
        for _ in range(n_iter):
            x, y, batch = sample_groups(prob, pol, theta, n, k, rng=rng)
            r = batch.rewards[:, 0].reshape(n, k)
            logp = pol.log_probs(theta)
            lr_ = (logp - log_ref)[x[:, None], y]
            R = r - prob.beta * lr_
            if name == "rebel":
                theta = rebel_step(prob, pol, theta, x, y, eta=settings["eta"])
            elif name in ("reinforce", "rloo") or (name in ("grpo", "dr_grpo") and settings["epochs"] == 1):
                length = lengths[x[:, None], y] if name == "grpo" else None
                c = group_weights(name, r, lr_, beta=prob.beta, length=length, baseline=baseline)
                theta = theta + settings["lr"] * pol.contract(theta, np.repeat(x, k), c.ravel() / n, y.ravel())
                if name == "reinforce":
                    d = settings["baseline_decay"]
                    baseline = d * baseline + (1 - d) * float(R.mean())
            elif name == "ppo":
                adv = (R - critic[x][:, None]).reshape(-1, 1)
                theta = _surrogate_epochs(pipe, theta, batch, adv, lr=settings["lr"], epochs=settings["epochs"],
                                          clip=settings["clip"])
                cl = settings["critic_lr"]
                sums = np.bincount(x, R.mean(axis=1), minlength=prob.shape[0])
                counts = np.bincount(x, minlength=prob.shape[0])
                seen = counts > 0
                critic[seen] += cl * (sums[seen] / counts[seen] - critic[seen])
            else:  # grpo / dr_grpo with several epochs: clipped-ratio steps on the group's advantages
                L = lengths[x[:, None], y].astype(float) if name == "grpo" else np.ones((n, k))
                # k * the reward part of the one-epoch weights is A / |y| (GRPO) or A (Dr. GRPO)
                adv = k * group_weights(name, r, np.zeros_like(r), beta=0.0, length=L if name == "grpo" else None)
                Lf = L.ravel()

                def kl_weight(th, s, a, Lf=Lf):
                    lr_th = pol.log_probs(th)[s, a] - log_ref[s, a]
                    return -prob.beta * -np.expm1(-lr_th) / Lf
                theta = _surrogate_epochs(pipe, theta, batch, adv.reshape(-1, 1), lr=settings["lr"],
                                          epochs=settings["epochs"], clip=settings["clip"], kl_weight=kl_weight)
            rec.add(theta)
        return Run(label, theta, rec.history(), n_iter, time.perf_counter() - t0, n_iter * n * k)
