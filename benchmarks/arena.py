"""The RLHF arena: the summarization table of Gao et al. (2024) in miniature, exact.

Default world: ``random`` (50 prompts x 8 responses), tabular policy, beta = 0.1,
5 seeds (independent demonstrations, preference pairs, reward models and sampled
responses), 100 iterations of 10 prompts for every on-policy algorithm, 100
full-batch steps for DPO. Prints

1. the table (win rate against pi_ref and against the demonstrator, KL, true reward)
   beside the published win rates (TL;DR, 6.9B models, judged by GPT-4 against the
   human reference summaries; Gao et al. 2024, Table 1, with REINFORCE and RLOO from
   Ahmadian et al. 2024 and PPO from Huang et al. 2024), and whether each published
   ordering holds here;
2. the exact expected updates at pi_ref: cosine and norm ratio against grad E[r] of
   GRPO and Dr. GRPO (reward part) and of RLOO, k = 2 and 4.

    python benchmarks/arena.py                 # table (< 1 minute)
    python benchmarks/arena.py --tune          # re-run the step-size grid first
    python benchmarks/arena.py --world length_bias --policy linear
"""
import argparse
import time

import numpy as np

from tabularpg import rlhf
from tabularpg.rlhf import arena
from tabularpg.rlhf import train as T

PUBLISHED = {"sft": 45.2, "dpo": 68.4, "reinforce": 70.7, "ppo": 77.6, "rloo (k=2)": 74.2, "rloo (k=4)": 77.9,
             "rebel": 78.1}

GRIDS = {"dpo": ("lr", [50, 100, 200, 400, 800]), "reinforce": ("lr", [5, 10, 20, 40, 80]),
         "ppo": ("lr", [2.5, 5, 10, 20, 40]), "rloo:k=2": ("lr", [5, 10, 20, 40, 80]),
         "rloo:k=4": ("lr", [5, 10, 20, 40, 80]), "rebel": ("eta", [0.3, 1, 3, 10, 30]),
         "grpo": ("lr", [10, 30, 100, 300, 1000]), "dr_grpo": ("lr", [5, 10, 20, 40, 80])}


def tune(world, policy, n_iter, n_prompts):
    """Grid search per algorithm on a separate pipeline (seed 999), scoring the exact
    J_beta of the reward model (what the algorithms optimize), two training seeds each."""
    pipe = T.prepare(world, policy=policy, rng=np.random.default_rng(999))
    specs = ["sft"]
    for spec, (key, grid) in GRIDS.items():
        scores = []
        for v in grid:
            v = v * (T._LINEAR_LR if policy == "linear" and key == "lr" else 1.0)
            js = [pipe.problem.objective(pipe.policy.probs(
                T.train(pipe, spec, n_iter=n_iter, n_prompts=n_prompts, rng=s, **{key: v}).theta)) for s in range(2)]
            scores.append((float(np.mean(js)), v))
        best = max(scores)[1]
        print(f"  {spec:10} {key}: " + "  ".join(f"{v:g}->{j:.4f}" for j, v in scores) + f"   best {best:g}")
        specs.append(f"{spec}{',' if ':' in spec else ':'}{key}={best:g}")
    return specs


def orderings(rows):
    """Published pairwise orderings (a < b) and whether they hold here (mean win rates)."""
    ours = {r["algorithm"]: r for r in rows}
    names = [n for n in PUBLISHED if n in ours]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pub = PUBLISHED[a] < PUBLISHED[b]
            lo, hi = (a, b) if pub else (b, a)
            here = ours[lo]["win_rate"] < ours[hi]["win_rate"]
            sep = ours[lo]["win_rate_high"] < ours[hi]["win_rate_low"]
            out.append((lo, hi, here, sep))
    return out


def bias_table(pipe, ks=(2, 4)):
    """Cosine and norm ratio of the expected reward-part update against grad E_pi[r_RM],
    and 'length drift': the rate of change of E_pi|y| along the unit expected update,
    divided by that along the unit gradient (1 = no length preference of its own)."""
    prob, pol, theta = pipe.problem, pipe.policy, pipe.theta_ref
    pi = pol.probs(theta)
    L = prob.length.astype(float)
    grad_len = pol.contract_table(theta, prob.mu[:, None] * pi * (L - np.sum(pi * L, axis=1, keepdims=True)))
    print("\nExact expected updates at pi_ref (reward part, beta = 0) against grad E_pi[r_RM]:")
    print(f"  {'algorithm':10} {'k':>2} {'cosine':>8} {'|E g|/|grad|':>13} {'length drift':>13} {'seconds':>8}")
    for k in ks:
        for name in ("rloo", "dr_grpo", "grpo"):
            t0 = time.perf_counter()
            rep = rlhf.normalization_bias(name, prob, pol, theta, k=k)
            drift = (np.sum(grad_len * rep.expected) / np.linalg.norm(rep.expected)) / (
                np.sum(grad_len * rep.gradient) / np.linalg.norm(rep.gradient))
            print(f"  {name:10} {k:2d} {rep.cosine:8.5f} {rep.norm_ratio:13.5f} {drift:13.3f} "
                  f"{time.perf_counter() - t0:8.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", default="random", help="world spec (default random = 50 x 8)")
    ap.add_argument("--policy", choices=("tabular", "linear"), default="tabular")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--prompts", type=int, default=10)
    ap.add_argument("--tune", action="store_true", help="re-run the step-size grid (about 1 minute more)")
    args = ap.parse_args()
    world = rlhf.make_world(args.world)
    specs = None
    if args.tune:
        print("Step-size grid (exact J_beta of the reward model, tuning pipeline seed 999):")
        specs = tune(world, args.policy, args.iters, args.prompts)
    t0 = time.perf_counter()
    res = arena.run_arena(world, specs, seeds=args.seeds, n_iter=args.iters, n_prompts=args.prompts,
                          policy=args.policy)
    total = time.perf_counter() - t0
    print(arena.format_table(res))
    print(f"({total:.1f} s for {args.seeds} seeds; specs: {' '.join(r['spec'] for r in res.rows if r['spec'])})")
    print("\nSide by side (win rate %; published: TL;DR 6.9B, GPT-4 judge vs human references):")
    print(f"  {'algorithm':12} {'published':>9} {'here vs pi_ref':>15} {'here vs demo':>13}")
    for r in res.rows:
        pub = PUBLISHED.get(r["algorithm"])
        print(f"  {r['algorithm']:12} {pub if pub is not None else '':>9} {100 * r['win_rate']:15.1f} "
              f"{100 * r['win_rate_opponent']:13.1f}")
    print("\nPublished orderings (lower < higher): holds here? separated by the 95% intervals?")
    held = 0
    for lo, hi, here, sep in orderings(res.rows):
        held += here
        print(f"  {lo:11} < {hi:11}  {'yes' if here else 'NO ':3}  {'separated' if sep else ''}")
    print(f"  {held} of {len(orderings(res.rows))} pairwise orderings hold")
    pipe = T.prepare(world, policy=args.policy, rng=np.random.default_rng(np.random.SeedSequence(0).spawn(1)[0]))
    bias_table(pipe)


if __name__ == "__main__":
    main()
