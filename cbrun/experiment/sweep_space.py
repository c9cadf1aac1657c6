"""The search space: grid values and random distributions over dotted config keys, as trials."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator

from cbrun.callbacks.base import resolve_mode
from cbrun.core.errors import CbrunError, did_you_mean
from cbrun.core.fields import StrictModel
from cbrun.experiment.yaml_source import format_path, parse_yaml, split_key

DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.S)
_KEY = r"^[A-Za-z_][\w-]*(\.[\w-]+|\[\d+\])*$"  # a dotted key; list items as [N] or .N


@dataclass(frozen=True)
class Distribution:
    """One random value per draw, from a seeded `random.Random`.

    `uniform(a, b)`, `loguniform(a, b)`, `randint(a, b)` (both ends included) or
    `choice(v1, v2, ...)` (values read as YAML, so `choice([8], [16, 8])` picks a list).
    """

    name: str
    args: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> Distribution:
        match = _CALL.match(text)
        if not match:
            raise ValueError(
                f"expected a distribution such as uniform(0.1, 0.5), got `{text}`; "
                f"choose one of: {', '.join(DISTRIBUTIONS)}"
            )
        name, raw = match.groups()
        if name not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution `{name}`.{did_you_mean(name, DISTRIBUTIONS)} "
                f"Choose one of: {', '.join(DISTRIBUTIONS)}"
            )
        try:
            args = tuple(parse_yaml(f"[{raw}]", text).data)
        except CbrunError as error:
            raise ValueError(f"cannot read the arguments of `{text}`: {error.message}") from None
        numeric = all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
        if name == "choice":
            if not args:
                raise ValueError("choice(...) needs at least one value")
        elif len(args) != 2 or not numeric or not args[0] < args[1]:
            raise ValueError(f"{name}(low, high) needs two numbers with low < high, got `{text}`")
        elif name == "loguniform" and args[0] <= 0:
            raise ValueError(f"loguniform(low, high) needs 0 < low, got `{text}`")
        elif name == "randint" and not all(isinstance(a, int) for a in args):
            raise ValueError(f"randint(low, high) needs two integers, got `{text}`")
        return cls(name, args)

    def sample(self, rng: random.Random) -> Any:
        if self.name == "choice":
            return rng.choice(self.args)
        low, high = self.args
        if self.name == "randint":
            return rng.randint(low, high)
        if self.name == "loguniform":
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        return rng.uniform(low, high)


SEARCHES = ("grid", "random", "optuna")
PRUNERS = ("none", "median", "hyperband")


class SweepSection(StrictModel):
    """A search over config keys, run by `cbrun sweep` (`cbrun train` ignores this section).

    `search: grid` (the default) crosses every grid combination with `trials` random draws;
    `random` draws `trials` points, grid values as uniform choices; `optuna` lets Optuna's TPE
    choose `trials` points from the same space. Each trial is an ordinary run.
    """

    search: Literal["grid", "random", "optuna"] = Field(
        "grid",
        description="grid: every grid combination x `trials` random draws; random: `trials` "
        "seeded draws of every key; optuna: `trials` points chosen by Optuna's TPE sampler "
        '(pip install "cbrun[optuna]").',
    )
    pruner: Literal["none", "median", "hyperband"] = Field(
        "none",
        description="optuna on the local pool: stop unpromising trials from their per-epoch "
        "`metric` (Optuna's MedianPruner or HyperbandPruner); on Ray, --scheduler prunes.",
    )

    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Dotted config key -> list of values to try, e.g. "
        "`compile.optimizer.learning_rate: [0.01, 0.001]`.",
    )
    random: dict[str, str] = Field(
        default_factory=dict,
        description="Dotted config key -> distribution: uniform(a, b), loguniform(a, b), "
        "randint(a, b) (inclusive) or choice(v1, v2, ...).",
    )
    trials: PositiveInt | None = Field(
        None,
        description="grid: random draws per grid combination (needs `random`; default 1); "
        "random and optuna: how many trials in all (required).",
    )
    metric: str = Field(
        "val_loss",
        pattern=r"^\w+$",
        description="What ranks trials: a history metric (best epoch's value, e.g. val_loss) "
        "or `test_<metric>` from the test split.",
    )
    direction: Literal["min", "max"] | None = Field(
        None, description="`min` or `max`; default from the metric's name (max for accuracy)."
    )
    seed: int | None = Field(
        None, ge=0, description="Seeds the random draws (default: experiment.seed)."
    )

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid key `{key}` needs at least one value")
        return _keys_checked(grid)

    @field_validator("random")
    @classmethod
    def _random_distributions(cls, spaces: dict[str, str]) -> dict[str, str]:
        for key, text in spaces.items():
            try:
                Distribution.parse(text)
            except ValueError as error:
                raise ValueError(f"random `{key}`: {error}") from None
        return _keys_checked(spaces)

    def checked(self) -> SweepSection:
        """This search, once the config's section and the command's flags are merged."""
        problem = None
        both = sorted(set(self.grid) & set(self.random))
        if both:
            problem = f"`{both[0]}` is both a grid key and a random key; pick one"
        elif self.search == "grid" and self.trials is not None and not self.random:
            problem = "`trials` counts random draws: add random keys (--random) or drop it"
        elif not self.grid and not self.random:
            problem = "nothing to sweep: give grid and/or random keys (--grid, --random)"
        elif self.search != "grid" and self.trials is None:
            problem = f"search `{self.search}` needs `trials`, the number of trials (--trials)"
        elif self.pruner != "none" and self.search != "optuna":
            problem = f"pruner `{self.pruner}` prunes Optuna trials: set search to optuna"
        elif self.pruner != "none" and self.metric.startswith("test_"):
            problem = (
                f"pruner `{self.pruner}` judges trials by their per-epoch metric, and "
                f"`{self.metric}` exists only after training: rank by a history metric "
                "such as val_loss"
            )
        if problem:
            raise CbrunError(f"sweep: {problem}")
        return self

    @property
    def resolved_direction(self) -> Literal["min", "max"]:
        return self.direction or resolve_mode(self.metric.removeprefix("test_"))


@dataclass(frozen=True)
class Trial:
    """One point of the search space: its number and the config values it sets."""

    index: int
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return f"trial-{self.index:03d}"

    def overrides(self) -> list[str]:
        """The `--set` overrides of this trial (values written as JSON, which is YAML)."""
        return [f"{key}={json.dumps(value)}" for key, value in self.params.items()]


def expand(sweep: SweepSection, seed: int) -> list[Trial]:
    """The trials of a grid or random search, numbered from 0 (optuna: params still unknown).

    grid: every grid combination crossed with `trials` seeded random draws; random: `trials`
    seeded draws of every key, each grid key a uniform choice among its values.
    """
    rng = random.Random(sweep.seed if sweep.seed is not None else seed)
    distributions = {key: Distribution.parse(text) for key, text in sweep.random.items()}
    if sweep.search == "optuna":
        return [Trial(index, {}) for index in range(sweep.trials or 1)]
    if sweep.search == "random":
        distributions = {
            **{key: Distribution("choice", tuple(values)) for key, values in sweep.grid.items()},
            **distributions,
        }
        return [
            Trial(index, {key: dist.sample(rng) for key, dist in distributions.items()})
            for index in range(sweep.trials or 1)
        ]
    draws = (sweep.trials or 1) if distributions else 1
    trials: list[Trial] = []
    for point in itertools.product(*sweep.grid.values()):
        for _ in range(draws):
            params = dict(zip(sweep.grid, point, strict=True))
            params.update({key: dist.sample(rng) for key, dist in distributions.items()})
            trials.append(Trial(len(trials), params))
    return trials


def probe_trials(sweep: SweepSection) -> list[Trial]:
    """For a search whose points are chosen as it runs (optuna): trials that together set
    every key to each of its values or ends, so bad values fail before any trial runs."""
    candidates = {key: list(values) for key, values in sweep.grid.items()}
    for key, text in sweep.random.items():
        dist = Distribution.parse(text)
        candidates[key] = list(dist.args)
    first = {key: values[0] for key, values in candidates.items()}
    probes = [Trial(0, first)]
    for key, values in candidates.items():
        probes += [Trial(len(probes), first | {key: value}) for value in values[1:]]
    return probes


def parse_grid_flag(flag: str) -> tuple[str, list[Any]]:
    """`--grid key=v1,v2` -> (key, [v1, v2]); the values are read as one YAML flow list."""
    key, sep, raw = flag.partition("=")
    if not sep or not raw.strip():
        raise CbrunError(f"--grid {flag}: expected KEY=V1,V2,..., e.g. training.batch_size=16,32")
    values = parse_yaml(f"[{raw}]", f"--grid {flag}").data
    return _flag_key(key, f"--grid {flag}"), values


def parse_random_flag(flag: str) -> tuple[str, str]:
    """`--random key=dist(...)` -> (key, distribution text), the distribution checked."""
    key, sep, raw = flag.partition("=")
    if not sep:
        raise CbrunError(
            f"--random {flag}: expected KEY=DIST, e.g. "
            "compile.optimizer.learning_rate=loguniform(1e-4, 1e-2)"
        )
    try:
        Distribution.parse(raw)
    except ValueError as error:
        raise CbrunError(f"--random {flag}: {error}") from None
    return _flag_key(key, f"--random {flag}"), raw


def _flag_key(key: str, flag: str) -> str:
    try:
        return _check_key(key.strip())
    except ValueError as error:
        raise CbrunError(f"{flag}: {error}") from None


def _keys_checked(values: dict[str, Any]) -> dict[str, Any]:
    """`values` under their keys as cbrun prints them; two spellings of one key are refused."""
    checked: dict[str, Any] = {}
    for key, value in values.items():
        path = _check_key(key)
        if path in checked:
            raise ValueError(f"`{key}` names `{path}` a second time")
        checked[path] = value
    return checked


def _check_key(key: str) -> str:
    """The key as cbrun prints key paths (`callbacks[0].patience`, also for `callbacks.0...`)."""
    if not re.match(_KEY, key):
        raise ValueError(
            f"`{key}` is not a config key like compile.optimizer.learning_rate or "
            "callbacks[0].patience"
        )
    path = split_key(key, key)
    if path[0] in ("sweep", "output"):
        raise ValueError(f"`{key}`: the sweep and output sections cannot be swept")
    return format_path(path)
