"""History-dependent tasks: an input phase of s states, then an autonomous rollout to predict.

For a history-dependent system (HDS) x(t+1) = f(x(t), ..., x(t-s+1)) each sample is

    inputs  u(1..s) = x(1..s) (the initial window),   u(s+1..s+H) = 0,
    targets y(t) = x(t) for t = s+1..s+H  (masked out for t <= s),

so a model must hold the whole window in memory and keep applying f (paper sec. 4.1). The output horizon H follows
an optional curriculum: training starts at ``horizons[0]`` and moves to the next horizon whenever the training
batch accuracy exceeds ``curriculum_threshold``; validation and testing use ``val_horizon`` / ``test_horizon``.
"""

from __future__ import annotations

from typing import Any

import torch

from wavezoo.core.operators import (
    VARIABLE_BINDING_TASKS,
    generalized_fibonacci,
    linear_rollout,
    random_stable_var,
    signed_selection,
)
from wavezoo.core.waves import wave_rollout
from wavezoo.data.base import Batch, SyntheticDataModule
from wavezoo.data.systems import RandomMLPSystem
from wavezoo.errors import ConfigError, check_choice, check_positive_int

# The longest rollout a history task generates: 500 times the paper's test horizon of 200. A batch holds
# batch_size * (history + horizon) * dim values per tensor; beyond this one batch runs to gigabytes.
MAX_HORIZON = 100_000


def check_horizon(name: str, value: Any) -> int:
    """``value`` if it is an integer in [1, ``MAX_HORIZON``], else a :class:`ConfigError` naming it."""
    check_positive_int(name, value)
    if value > MAX_HORIZON:
        raise ConfigError(f"{name}={value!r} is invalid: expected an integer in [1, {MAX_HORIZON}] (steps of rollout)")
    return value


def check_horizons(horizons: Any) -> list[int]:
    """``horizons`` as a list if it is a non-empty list (or tuple) of integers in [1, ``MAX_HORIZON``], else a
    :class:`ConfigError`."""
    if not isinstance(horizons, (list, tuple)) or not horizons:
        raise ConfigError(f"horizons={horizons!r} is invalid: expected a non-empty list of integers >= 1")
    return [check_horizon("horizon", h) for h in horizons]


class HistoryTaskDataModule(SyntheticDataModule):
    """Base of the HDS tasks: input phase of ``history`` states in R^``dim``, then a rollout of H steps.

    Subclasses implement :meth:`initial_window` and :meth:`rollout`.
    """

    task_type = "regression"

    def __init__(
        self,
        dim: int,
        history: int,
        horizons: list[int] | None = None,
        curriculum_threshold: float | None = None,
        val_horizon: int = 200,
        test_horizon: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dim = check_positive_int("d (dim)", dim)
        self.history = check_positive_int("s (history)", history)
        self.horizons = check_horizons([20] if horizons is None else horizons)
        if curriculum_threshold is not None and not 0 < curriculum_threshold <= 1:
            raise ConfigError(
                f"curriculum_threshold={curriculum_threshold!r} is invalid: expected a number in (0, 1] or null"
            )
        self.curriculum_threshold = curriculum_threshold
        self.val_horizon = check_horizon("val_horizon", val_horizon)
        self.test_horizon = check_horizon("test_horizon", test_horizon)
        self.stage = 0
        self.input_size = self.output_size = self.dim

    # -- the system -----------------------------------------------------------------------------------------
    def initial_window(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``[batch, s, d]`` initial states x(1..s), oldest first."""
        raise NotImplementedError

    def rollout(self, window: torch.Tensor, horizon: int) -> torch.Tensor:
        """``[batch, horizon, d]`` states x(s+1..s+horizon) that follow ``window``."""
        raise NotImplementedError

    # -- samples --------------------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator, horizon: int | None = None) -> Batch:
        horizon = check_positive_int("horizon", self.horizon if horizon is None else horizon)
        window = self.initial_window(batch_size, generator)
        future = self.rollout(window, horizon)
        inputs = torch.cat([window, torch.zeros_like(future)], dim=1)
        targets = torch.cat([torch.zeros_like(window), future], dim=1)
        mask = torch.zeros(batch_size, self.history + horizon, dtype=torch.bool)
        mask[:, self.history :] = True
        return inputs, targets, mask

    def train_kwargs(self) -> dict[str, Any]:
        return {"horizon": self.horizon}

    def eval_kwargs(self, split: str) -> dict[str, Any]:
        return {"horizon": self.val_horizon if split == "val" else self.test_horizon}

    # -- curriculum -----------------------------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        """The current training horizon."""
        return self.horizons[self.stage]

    def report_train_accuracy(self, accuracy: float) -> bool:
        """Advance the curriculum when ``accuracy`` exceeds the threshold; returns whether it advanced."""
        last = len(self.horizons) - 1
        if self.curriculum_threshold is None or self.stage >= last or accuracy <= self.curriculum_threshold:
            return False
        self.stage += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stage": self.stage}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.stage = min(int(state_dict.get("stage", 0)), len(self.horizons) - 1)


class VariableBindingDataModule(HistoryTaskDataModule):
    """The paper's variable-binding tasks: s = 8 inputs in {-1,+1}^d, then y(t) = F^T [y(t-s); ...; y(t-1)].

    ``task`` is a preset ``"T1"``..``"T4"`` (d = s = 8, decoded from the authors' code) or ``"custom"`` with an
    ``operator``: one ``[source_dim, lag, sign]`` row per output dim j, meaning y_j(t) = sign * y_source(t - lag).
    Defaults follow the paper's protocol: curriculum horizons 10/20/40/60/100 (advance when the training sign
    accuracy passes ``curriculum_threshold``), validation and test at horizon 200, batch size 64.
    """

    def __init__(
        self,
        task: str = "T1",
        operator: list[list[int]] | None = None,
        dim: int = 8,
        history: int = 8,
        horizons: list[int] | None = None,
        curriculum_threshold: float | None = 0.98,
        **kwargs: Any,
    ) -> None:
        """``**kwargs``: ``val_horizon``/``test_horizon`` (200) and the batching options of
        :class:`~wavezoo.data.base.SyntheticDataModule`."""
        horizons = [10, 20, 40, 60, 100] if horizons is None else horizons  # only None means the default
        super().__init__(dim, history, horizons, curriculum_threshold, **kwargs)
        check_choice("task", task, [*VARIABLE_BINDING_TASKS, "custom"])
        if task == "custom":
            if operator is None:
                raise ConfigError("task='custom' needs an operator: one [source_dim, lag, sign] row per dim")
            spec = operator
        else:
            if operator is not None:
                raise ConfigError(f"operator is only allowed with task='custom', not with task={task!r}")
            if (dim, history) != (8, 8):
                raise ConfigError(f"task={task!r} is defined for d = s = 8, got d={dim}, s={history}")
            spec = VARIABLE_BINDING_TASKS[task]
        self.task = task
        self.phi = signed_selection(spec, dim, history)
        self.save_hyperparameters()  # the task travels with every checkpoint ("datamodule_hyper_parameters")

    def initial_window(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        bits = torch.randint(0, 2, (batch_size, self.history, self.dim), generator=generator)
        return bits.float() * 2 - 1

    def rollout(self, window: torch.Tensor, horizon: int) -> torch.Tensor:
        return linear_rollout(self.phi, window, horizon)


class HDSDataModule(HistoryTaskDataModule):
    """General history-dependent systems x(t+1) = f(x(t), ..., x(t-s+1)) with Gaussian initial windows.

    ``system``:
        * ``"fibonacci"`` — generalized Fibonacci, f = sum of the last s states, kept bounded by ``normalize``
          (``"spectral"``: divided by the growth rate rho^t; ``"mean"``: window average; ``"none"``);
        * ``"var"`` — a random stable VAR(s) whose companion matrix has spectral radius ``radius``;
        * ``"mlp"`` — f(window) = tanh(A tanh(B vec(window))) with random A, B of gain ``gain`` and ``mlp_hidden``
          hidden units.
    The system itself is drawn from ``system_seed``; the samples from ``seed``.
    """

    def __init__(
        self,
        system: str = "fibonacci",
        dim: int = 4,
        history: int = 4,
        normalize: str = "spectral",
        radius: float = 0.95,
        mlp_hidden: int = 32,
        gain: float = 1.5,
        system_seed: int = 0,
        horizons: list[int] | None = None,
        curriculum_threshold: float | None = None,
        val_horizon: int = 50,
        test_horizon: int = 50,
        **kwargs: Any,
    ) -> None:
        """``**kwargs``: the batching options of :class:`~wavezoo.data.base.SyntheticDataModule`."""
        horizons = [50] if horizons is None else horizons  # only None means the default
        super().__init__(dim, history, horizons, curriculum_threshold, val_horizon, test_horizon, **kwargs)
        self.system = check_choice("system", system, ("fibonacci", "var", "mlp"))
        self.phi: torch.Tensor | None = None  # a linear system's lag operators
        self.mlp: RandomMLPSystem | None = None  # the nonlinear system's f
        if system == "fibonacci":
            self.phi = generalized_fibonacci(dim, history, normalize)
        elif system == "var":
            self.phi = random_stable_var(dim, history, radius, seed=system_seed)
        else:
            self.mlp = RandomMLPSystem(dim, history, mlp_hidden, gain, system_seed)

    def initial_window(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(batch_size, self.history, self.dim, generator=generator)

    def rollout(self, window: torch.Tensor, horizon: int) -> torch.Tensor:
        if self.phi is not None:  # linear f: the closed form x(t+k) = (last block-row of M^k) vec(window)
            return linear_rollout(self.phi, window, horizon)
        return wave_rollout(self.mlp, window, horizon)  # a nonlinear f has no closed form: the TWM with boundary f
