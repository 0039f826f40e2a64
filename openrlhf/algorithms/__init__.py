from openrlhf.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    discounted_returns,
    get_advantage_estimator,
    group_mean_baseline,
    group_view,
    leave_one_out_baseline,
    register_advantage_estimator,
    token_level_rewards,
)
from openrlhf.algorithms.losses import (
    compute_kl,
    kl_loss,
    masked_mean,
    masked_sum,
    masked_whiten,
    policy_loss,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "compute_kl",
    "discounted_returns",
    "get_advantage_estimator",
    "group_mean_baseline",
    "group_view",
    "kl_loss",
    "leave_one_out_baseline",
    "masked_mean",
    "masked_sum",
    "masked_whiten",
    "policy_loss",
    "register_advantage_estimator",
    "token_level_rewards",
]
