"""The one table of minimal-rl: every algorithm of Xiong et al., "A Minimalist Approach to LLM Reasoning:
from Rejection Sampling to Reinforce" (arXiv 2504.11343), the two of its follow-up Reinforce-Ada (arXiv 2510.04996),
and every sample filter, with their properties.

An algorithm is a (weights, sample filter, loss) triple (spec: ``ALGORITHMS.md``):

- ``weights``: the per-sample weight equation, a key of `WEIGHT_EQUATIONS` (the functions themselves live in
  `minimal_rl.algorithms`, one per equation of the paper);
- ``sample_filter``: what leaves the update by default, a key of `SAMPLE_FILTERS`; any filter can be put on
  top of any weights (the paper's ablations are (reinforce, filter) pairs);
- ``loss``: ``"nll"`` (-A log pi, no ratio: RAFT) or ``"ppo_clip"`` (the PPO clipped surrogate).

Reinforce-Ada's rows also have an ``exit_rule`` (`EXIT_RULES`): their responses are not a fixed group of n but
sampled in rounds until each prompt's pool shows a signal (`minimal_rl.adaptive`). A host that cannot sample that
way refuses them (`check_host_sampling`) instead of training another algorithm on a fixed group.

Every name list in the project (CLI choices, verl estimator registration, presets, the Hydra plugin's checks,
TRL's trainer factory) is derived from this module. It imports nothing but the standard library, so the Hydra
plugin can read it at config-composition time without loading torch or verl.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

# --------------------------------------------------------------------------------------------
# Sample filters: which samples leave the update
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleFilter:
    """One way of choosing the samples the update may use (paper, Sec. 3-4)."""

    name: str
    drops: str  # what is dropped, in words
    unit: str  # "response" (decided per response) or "group" (a whole prompt's responses at once)
    can_reject_whole_groups: bool  # some score pattern makes it drop every response of a group


SAMPLE_FILTERS: Mapping[str, SampleFilter] = MappingProxyType(
    {
        f.name: f
        for f in (
            SampleFilter("none", "nothing", "group", False),
            SampleFilter("drop_wrong", "every wrong response (so all-wrong groups vanish entirely)", "response", True),
            SampleFilter("drop_all_wrong", "groups whose every response is wrong", "group", True),
            SampleFilter("drop_all_correct", "groups whose every response is correct", "group", True),
            SampleFilter(
                "drop_uniform",
                "groups whose rewards are all equal (zero variance: all-correct and all-wrong for a binary reward)",
                "group",
                True,
            ),
        )
    }
)

# --------------------------------------------------------------------------------------------
# Weight equations and losses
# --------------------------------------------------------------------------------------------

# name -> the equation, as the spec writes it (r_i = +1 correct / -1 wrong)
WEIGHT_EQUATIONS: Mapping[str, str] = MappingProxyType(
    {
        "unit": "A_i = 1",
        "signed": "A_i = r_i",
        "signed_over_std": "A_i = r_i / std_group(r)",
        "mean_centred": "A_i = r_i - mean_group(r)",
        "grpo": "A_i = (r_i - mean_group(r)) / (std_group(r) + 1e-6)",
        "pool_centred": "A_i = c_i - mean_pool(c), c_i in {0, 1} (the pool: every response sampled for the prompt)",
    }
)
# Weights on Reinforce-Ada's 0/1 scale (c_i = [correct]) under the default "signed" reward mapping; for r = +-1 this
# is (r_i - mean(r)) / 2.
BINARY_SCALE_WEIGHTS = ("pool_centred",)
# Weights that depend on the other responses of the group: a filter that drops single responses (drop_wrong)
# would change them, and a framework that recomputes them on the kept batch (verl's estimators do) would give
# other numbers than one that filters after weighing (TRL). Only whole-group filters fit them.
GROUP_DEPENDENT_WEIGHTS = ("signed_over_std", "mean_centred", "grpo", "pool_centred")
# Filters whose decision is c_i = [score > positive_threshold]: the threshold must fit the reward (`drop_uniform`
# compares the rewards themselves, `none` decides nothing).
THRESHOLD_FILTERS = ("drop_wrong", "drop_all_wrong", "drop_all_correct")
LOSSES: Mapping[str, str] = MappingProxyType(
    {
        "nll": "-A * log pi_theta (no ratio, no clipping)",
        "ppo_clip": "max(-A * rho, -A * clip(rho, 1 - eps_low, 1 + eps_high))",
    }
)
FAMILIES = ("raft", "reinforce", "grpo")
# Reinforce-Ada's exit rules (arXiv 2510.04996, Sec. 3): when a prompt's pool has enough signal to stop sampling it.
EXIT_RULES: Mapping[str, str] = MappingProxyType(
    {
        "balanced": "at least n//2 correct and n - n//2 wrong responses in the pool",
        "positive_focused": "at least one correct response in the pool",
    }
)
# The hosts (adapter packages) that can sample adaptively; the others refuse the rows with an exit rule.
# (verl_ext: verl >=0.9.1,<0.10 only, experimental: docs/verl-adaptive.md.)
ADAPTIVE_SAMPLING_HOSTS: frozenset[str] = frozenset({"trl_ext", "verl_ext"})
# Why a host outside ADAPTIVE_SAMPLING_HOSTS cannot sample that way, and what it would take (a doc in the repo).
ADAPTIVE_SAMPLING_GAPS: Mapping[str, str] = MappingProxyType({})

# --------------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlgorithmSpec:
    """One row of the spec's table (``ALGORITHMS.md``)."""

    name: str
    weights: str  # key of WEIGHT_EQUATIONS
    sample_filter: str  # default filter, key of SAMPLE_FILTERS
    loss: str  # key of LOSSES
    family: str  # "raft" (positives only), "reinforce" (+-1 rewards), "grpo" (the reference)
    paper: str  # the paper's name of the row
    estimator: str  # the weights' verl advantage estimator (verl_ext's, or verl's own for "grpo")
    clip_ratio_high: float | None = None  # a config variant's upper clip (None: the frameworks' default 0.2)
    variant_of: str | None = None  # the algorithm this one is a config variant of
    exit_rule: str | None = None  # Reinforce-Ada's (key of EXIT_RULES); None: a fixed group of n responses

    @property
    def can_reject_whole_groups(self) -> bool:
        """Whether the default filter can leave a prompt with no response in the update."""
        return SAMPLE_FILTERS[self.sample_filter].can_reject_whole_groups

    @property
    def equation(self) -> str:
        return WEIGHT_EQUATIONS[self.weights]

    @property
    def adaptive(self) -> bool:
        """Whether the responses are sampled in rounds (Reinforce-Ada) rather than as a fixed group of n."""
        return self.exit_rule is not None


def _variant(base: AlgorithmSpec, name: str, paper: str, clip_ratio_high: float) -> AlgorithmSpec:
    return AlgorithmSpec(
        name, base.weights, base.sample_filter, base.loss, base.family, paper, base.estimator,
        clip_ratio_high=clip_ratio_high, variant_of=base.name,
    )


def _rows(*rows: tuple) -> list[AlgorithmSpec]:
    # (name, weights, default filter, loss, family, the paper's row[, estimator]); the estimator defaults to the name
    return [AlgorithmSpec(*row) if len(row) == 7 else AlgorithmSpec(*row, row[0]) for row in rows]


_RAFT, _RAFT_PP, _REINFORCE, _REINFORCE_REJ, _REJ_STD, _NO_ALL_WRONG, _NO_ALL_CORRECT, _MEAN_ZERO, _GRPO = _rows(
    ("raft", "unit", "drop_wrong", "nll", "raft", "RAFT (Eq. 2)"),
    ("raft_pp", "unit", "drop_wrong", "ppo_clip", "raft", "RAFT++ (Sec. 3.1)", "raft"),  # RAFT's weights, PPO's loss
    ("reinforce", "signed", "none", "ppo_clip", "reinforce", "Reinforce (Eq. 5)"),
    ("reinforce_rej", "signed", "drop_uniform", "ppo_clip", "reinforce", "Reinforce-Rej (Sec. 4)"),
    ("reinforce_rej_std", "signed_over_std", "drop_uniform", "ppo_clip", "reinforce", "Reinforce-Rej + std (ablation, Sec. 4)"),
    ("reinforce_remove_all_wrong", "signed", "drop_all_wrong", "ppo_clip", "reinforce", "Reinforce + remove all wrong (ablation, Sec. 4)"),
    ("reinforce_remove_all_correct", "signed", "drop_all_correct", "ppo_clip", "reinforce", "Reinforce + remove all correct (ablation, Sec. 4)"),
    ("reinforce_mean_zero", "mean_centred", "none", "ppo_clip", "reinforce", "Reinforce + mean zero (ablation, Sec. 4)"),
    ("grpo", "grpo", "none", "ppo_clip", "grpo", "GRPO (reference, Eq. 6)"),
)

ALGORITHMS: Mapping[str, AlgorithmSpec] = MappingProxyType(
    {
        a.name: a
        for a in (
            _RAFT,
            _RAFT_PP,
            _variant(_RAFT_PP, "raft_pp_clip_higher", "RAFT++ with clip-higher (Sec. 3.1)", 0.28),
            # The ablation behind finding 3 (not a Table 1 row). RAFT's weights are >= 0, so only the upper clip
            # can bind, and 1e9 removes it.
            _variant(_RAFT_PP, "raft_pp_no_clip", "RAFT++ without clipping (ablation, Sec. 3.1)", 1e9),
            _REINFORCE, _REINFORCE_REJ, _REJ_STD, _NO_ALL_WRONG, _NO_ALL_CORRECT, _MEAN_ZERO, _GRPO,
            # Reinforce-Ada (arXiv 2510.04996): GRPO without std, the baseline from the whole pool, uniform pools
            # dropped (the released code keeps them with weight 0)
            AlgorithmSpec(
                "reinforce_ada_balance", "pool_centred", "drop_uniform", "ppo_clip", "reinforce",
                "Reinforce-Ada-balance (arXiv 2510.04996)", "reinforce_ada_balance", exit_rule="balanced",
            ),
            AlgorithmSpec(
                "reinforce_ada_pos", "pool_centred", "drop_uniform", "ppo_clip", "reinforce",
                "Reinforce-Ada-pos (arXiv 2510.04996)", "reinforce_ada_pos", exit_rule="positive_focused",
            ),
        )
    }
)

# verl advantage estimators minimal-rl registers: every estimator of the table but verl's own GRPO (the adaptive ones
# refuse, naming what is missing, until verl_ext can sample adaptively).
ESTIMATOR_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(a.estimator for a in ALGORITHMS.values() if a.family != "grpo")
)
# minimal-rl's own losses in verl: only RAFT's -A log pi (every other algorithm uses verl's PPO-clip loss).
VERL_LOSS_OF = MappingProxyType({"nll": "raft", "ppo_clip": "vanilla"})
LOSS_NAMES: tuple[str, ...] = ("raft",)
# verl presets (+minimal_rl=<name>): one per algorithm except verl's own GRPO, plus the filter-only preset.
FILTER_ONLY_PRESET = "sample_filter"


def _lookup(table: Mapping, kind: str, name: str):
    try:
        return table[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {', '.join(table)}") from None


def get_algorithm(name: str) -> AlgorithmSpec:
    """An algorithm by name, with an error that lists the valid names."""
    return _lookup(ALGORITHMS, "algorithm", name)


def get_sample_filter(name: str) -> SampleFilter:
    """A sample filter by name, with an error that lists the valid names."""
    return _lookup(SAMPLE_FILTERS, "sample filter", name)


def check_filter_fits(algorithm: str, sample_filter: str) -> None:
    """Raise ValueError when ``sample_filter`` drops single responses but ``algorithm``'s weights depend on the rest of
    the group (the kept responses' weights would depend on whether the dropped ones were weighed first)."""
    spec, chosen = get_algorithm(algorithm), get_sample_filter(sample_filter)
    if chosen.unit == "response" and spec.weights in GROUP_DEPENDENT_WEIGHTS:
        raise ValueError(
            f"sample filter {chosen.name!r} drops single responses, but {spec.name!r} weighs a response against its "
            f"group ({WEIGHT_EQUATIONS[spec.weights]}): the kept responses' weights would change with the drop. Use a "
            "whole-group filter (drop_all_wrong, drop_all_correct, drop_uniform), or RAFT / Reinforce weights."
        )


def algorithms_of(*families: str) -> tuple[str, ...]:
    """Names of the algorithms in the given families, in table order."""
    return tuple(name for name, a in ALGORITHMS.items() if a.family in families)


def preset_names() -> tuple[str, ...]:
    """The verl presets minimal-rl ships: one per algorithm but verl's own GRPO and those verl_ext cannot sample
    (`ADAPTIVE_SAMPLING_HOSTS`), then the filter-only preset."""
    names = algorithms_of("raft", "reinforce")
    return (*(n for n in names if host_can_sample(n, "verl_ext")), FILTER_ONLY_PRESET)


def is_adaptive(algorithm: object) -> bool:
    """Whether ``algorithm`` is a table row sampled in rounds (Reinforce-Ada); False for any other name."""
    spec = ALGORITHMS.get(str(algorithm).lower())
    return spec is not None and spec.adaptive


def host_can_sample(algorithm: str, host: str) -> bool:
    """Whether ``host`` (an adapter package: ``"trl_ext"``, ``"verl_ext"``) can sample the way ``algorithm`` needs
    (True for a name outside the table, such as one of verl's own estimators)."""
    spec = ALGORITHMS.get(str(algorithm).lower())
    return spec is None or not spec.adaptive or host in ADAPTIVE_SAMPLING_HOSTS


def check_host_sampling(algorithm: str, host: str) -> None:
    """Raise ValueError, naming what is missing, when ``host`` cannot sample the way ``algorithm`` needs: training
    Reinforce-Ada on a fixed group of n responses would silently be another algorithm (pool = group, no rounds)."""
    if host_can_sample(algorithm, host):
        return
    spec = get_algorithm(algorithm)
    gap = ADAPTIVE_SAMPLING_GAPS.get(host)
    why = f" (why, and what it would take: {gap})" if gap else ""
    raise ValueError(
        f"algorithm {spec.name!r} ({spec.paper}) needs adaptive multi-round sampling: responses sampled in rounds "
        f"until each prompt's pool meets the {spec.exit_rule!r} exit rule ({EXIT_RULES[spec.exit_rule]}), the "
        f"baseline taken from the whole pool. {host} has no adaptive sampling{why}, and on a fixed group of n "
        "responses it would be another algorithm. Its nearest fixed-sampling relative is 'reinforce_rej' (uniform "
        "groups dropped)."
    )


def estimator_of_preset(preset: str) -> str | None:
    """The advantage estimator a preset sets (None: the filter-only preset keeps the user's)."""
    spec = ALGORITHMS.get(str(preset).lower())
    return spec.estimator if spec is not None else None
