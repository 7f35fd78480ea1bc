"""Neural softmax policy: cost of the hand-written backward pass and of the exact gradient.

A state-action MLP (features d = 16, hidden (96, 96), tanh: 11 041 parameters) on a dense
Garnet(S = 1000, A = 4, b = 5). Rows:

* ``contract`` (one reverse pass over an (S, A) weight table) against a plain Python loop
  of per-state backward passes (one reverse pass per state over its A rows), and against
  ``jax.vjp`` of the same network when jax is importable (optional, x64);
* ``exact.policy_gradient`` for the network against a linear softmax policy with the same
  S, A and d (the target: neural at most 2x linear).

    python benchmarks/neural.py            # S = 1000
    python benchmarks/neural.py --quick    # S = 200
"""
import argparse

import numpy as np
from _timing import timings

import tabularpg as tpg
from tabularpg import envs, exact


def median_time(fn, repeat):
    return float(np.median(timings(fn, repeat)))


def per_state_loop(pol, theta, w_sa):
    """Baseline: one backward pass per state over that state's A rows (what a user might
    write first); same result as ``pol.contract_table``."""
    layers, acts = pol._forward(theta)
    pi = tpg.policies.softmax(pol._to_sa(acts[-1][1]))
    A = pol.n_actions
    g = np.zeros(pol.n_params)
    for s in range(pol.n_states):
        rows = np.arange(s * A, (s + 1) * A)
        zbar = (w_sa[s] - pi[s] * w_sa[s].sum())[:, None]
        g += pol._backward(layers, acts, zbar, rows=rows)
    return g


def jax_vjp(pol, theta, w_sa):
    """``jax.vjp`` of the same network's log-softmax, or None when jax is missing."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    x = jnp.asarray(pol._x)
    shapes = [(w, shape, b) for w, shape, b in pol._slices]
    S, A = pol.n_states, pol.n_actions

    def logp(th):
        h = x
        for i, (ws, shape, bs) in enumerate(shapes):
            h = h @ th[ws].reshape(shape) + th[bs]
            if i < len(shapes) - 1:
                h = jnp.tanh(h)
        z = h.reshape(S, A)
        return jax.nn.log_softmax(z, axis=1)

    @jax.jit
    def contract(th, w):
        _, vjp = jax.vjp(logp, th)
        return vjp(w)[0]

    th, w = jnp.asarray(theta), jnp.asarray(w_sa)
    contract(th, w).block_until_ready()
    return lambda: contract(th, w).block_until_ready(), np.asarray(contract(th, w))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    S, A, d = (200 if args.quick else 1000), 4, 16
    rng = np.random.default_rng(0)
    mdp = envs.garnet(S, A, 5, gamma=0.9, rng=0)
    phi = rng.normal(size=(S, A, d))
    net = tpg.NeuralSoftmax(phi, hidden=(96, 96))
    lin = tpg.LinearSoftmax(phi)
    th_net, th_lin = net.init(1), rng.normal(size=d)
    w_sa = rng.normal(size=(S, A))
    rep = 9

    ref = net.contract_table(th_net, w_sa)
    loop = per_state_loop(net, th_net, w_sa)
    assert np.allclose(loop, ref, rtol=1e-10, atol=1e-10)
    def fresh_contract():
        net._cache = None  # time the forward pass too, as jax does
        return net.contract_table(th_net, w_sa)

    t_con = median_time(fresh_contract, rep)
    t_loop = median_time(lambda: per_state_loop(net, th_net, w_sa), 3)
    rows = [("contract, hand-written forward + reverse pass", t_con, 1.0),
            ("contract, loop of per-state backward passes", t_loop, t_loop / t_con)]
    jx = jax_vjp(net, th_net, w_sa)
    if jx is not None:
        fn, out = jx
        assert np.allclose(out, ref, rtol=1e-9, atol=1e-9)
        t_jax = median_time(fn, rep)
        rows.append(("contract, jax.jit(jax.vjp) (x64)", t_jax, t_jax / t_con))
    t_gn = median_time(lambda: exact.policy_gradient(mdp, net, th_net), rep)
    t_gl = median_time(lambda: exact.policy_gradient(mdp, lin, th_lin), rep)
    rows += [("exact gradient, linear softmax (d = 16)", t_gl, t_gl / t_con),
             ("exact gradient, neural softmax", t_gn, t_gn / t_con)]
    print(f"S = {S}, A = {A}, d = {d}, hidden (96, 96), tanh, {net.n_params} parameters; median of {rep} runs")
    print(f"{'what':46} {'seconds':>9} {'/ contract':>10}")
    for name, t, r in rows:
        print(f"{name:46} {t:9.4f} {r:10.2f}")
    print(f"neural / linear exact gradient: {t_gn / t_gl:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
