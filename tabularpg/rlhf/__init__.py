r"""An RLHF arena on finite worlds: prompts are states, responses are actions.

A horizon-1 MDP with prompt distribution :math:`\mu` is where the algorithms of RLHF
(SFT, a Bradley-Terry reward model, DPO, REINFORCE, PPO, RLOO, REBEL, GRPO, Dr. GRPO)
meet, and where every number of an RLHF results table is exact: win rates, KL to the
reference, the KL-regularized optimum :math:`\pi^*_\beta` and each algorithm's expected
update. Modules:

* :mod:`~tabularpg.rlhf.world`: worlds, :class:`KLProblem`, exact metrics;
* :mod:`~tabularpg.rlhf.reward_model`: SFT and the reward model;
* :mod:`~tabularpg.rlhf.updates`: the algorithms' weights, sampled and exact expected updates;
* :mod:`~tabularpg.rlhf.train`: the pipeline and the training loops;
* :mod:`~tabularpg.rlhf.arena`: the results table, the plot and the ``tabularpg arena`` command.
"""
from .reward_model import (
    FitResult,
    RewardModel,
    fit_reward_model,
    fit_reward_model_population,
    reward_model_loss,
    reward_model_population_loss,
    sample_demonstrations,
    sft,
    sft_loss,
)
from .updates import (
    ALGORITHMS,
    BiasReport,
    expected_update,
    group_weights,
    normalization_bias,
    rebel_population_step,
    rebel_step,
    sample_groups,
    sampled_update,
    update_moments,
)
from .world import (
    KLProblem,
    Metrics,
    World,
    demonstrator,
    evaluate,
    kl_to_reference,
    length_bias_world,
    make_world,
    random_world,
    total_variation,
    win_rate,
)

__all__ = [
    "ALGORITHMS", "BiasReport", "FitResult", "KLProblem", "Metrics", "RewardModel", "World",
    "demonstrator", "evaluate", "expected_update", "fit_reward_model", "fit_reward_model_population",
    "group_weights", "kl_to_reference", "length_bias_world", "make_world", "normalization_bias",
    "random_world", "rebel_population_step", "rebel_step", "reward_model_loss", "reward_model_population_loss",
    "sample_demonstrations", "sample_groups", "sampled_update", "sft", "sft_loss", "total_variation", "update_moments",
    "win_rate",
]
