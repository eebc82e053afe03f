"""The paper's tasks T1..T4 against hand-computed sequences (lags and signs)."""

import re

import pytest
import torch

from wavezoo import ConfigError
from wavezoo.data import VariableBindingDataModule

# Window of distinct values: w[p][i] = 10 p + i + 1, p = 0 the oldest input u(1), p = 7 the newest u(8).
WINDOW = (torch.arange(8)[:, None] * 10 + torch.arange(8)[None, :] + 1).double()[None]

# y(9), computed by hand from the decoded operators: y_j(9) = sign * u(9 - lag)[src] = sign * w[8 - lag][src].
FIRST_OUTPUT = {
    "T1": [1, 2, 3, 4, 5, 6, 7, 8],  # y_j(t) = y_j(t - 8): u(1)
    "T2": [1, 12, 23, 34, 45, 56, 67, 78],  # y_j(t) = y_j(t - (8 - j)): w[j][j]
    "T3": [-45, 34, -23, -1, -12, -56, 78, -67],
    "T4": [-56, 67, 1, 12, -23, 34, 45, -78],
}


def rollout(task, horizon):
    return VariableBindingDataModule(task).rollout(WINDOW, horizon)[0]


@pytest.mark.parametrize("task", ["T1", "T2", "T3", "T4"])
def test_first_output_is_hand_computed(task):
    assert rollout(task, 1)[0].tolist() == FIRST_OUTPUT[task]


def test_t1_repeats_the_input_with_period_eight():
    y = rollout("T1", 24)
    for k in range(24):
        assert torch.equal(y[k], WINDOW[0, k % 8])


def test_t2_later_steps():
    y = rollout("T2", 9)  # y[k] is y(9 + k)
    assert y[:, 7].eq(78).all()  # lag 1: y_7 is constant
    assert y[1, 6] == 77  # y_6(10) = y_6(8) = w[7][6]
    assert y[8, 0] == y[0, 0] == 1  # lag 8 on dim 0: period 8


def test_t3_and_t4_second_step():
    t3 = rollout("T3", 2)
    assert t3[1, 6] == -67  # y_6(10) = +y_7(9) = -67
    assert t3[1, 7] == -77  # y_7(10) = -y_6(8) = -w[7][6]
    t4 = rollout("T4", 2)
    assert t4[1, 7] == 78  # y_7(10) = -y_7(9) = 78
    assert t4[1, 1] == 77  # y_1(10) = +y_6(8) = 77


@pytest.mark.parametrize("task", ["T1", "T2", "T3", "T4"])
def test_vectorised_rollout_matches_step_by_step_recursion(task):
    dm = VariableBindingDataModule(task)
    window = torch.randint(0, 2, (5, 8, 8)).double() * 2 - 1
    states = list(window.unbind(1))
    for _ in range(200):
        states.append(sum(dm.phi[k] @ states[-1 - k].T for k in range(8)).T)
    assert torch.equal(torch.stack(states[8:], 1), dm.rollout(window, 200))


def test_batch_layout_and_mask():
    dm = VariableBindingDataModule("T3", horizons=[10], batch_size=4)
    x, y, mask = dm.next_train_batch()
    assert x.shape == y.shape == (4, 18, 8) and mask.shape == (4, 18)
    assert set(x[:, :8].unique().tolist()) == {-1.0, 1.0} and x[:, 8:].eq(0).all()
    assert mask[:, 8:].all() and not mask[:, :8].any()
    assert set(y[:, 8:].unique().tolist()) == {-1.0, 1.0}


def test_custom_operator_and_test_horizon():
    dm = VariableBindingDataModule("custom", operator=[[1, 2, -1], [0, 1, 1]], dim=2, history=3)
    x, y, mask = dm.eval_set("test")[0]
    assert x.shape == (64, 203, 2)  # s = 3 inputs + test horizon 200
    # y_0(t) = -y_1(t-2), y_1(t) = y_0(t-1)
    seq = torch.cat([x[:, :3], y[:, 3:]], 1)
    assert torch.equal(seq[:, 3:, 0], -seq[:, 1:-2, 1]) and torch.equal(seq[:, 3:, 1], seq[:, 2:-1, 0])


def test_curriculum_advances_on_accuracy_and_round_trips():
    dm = VariableBindingDataModule("T1", curriculum_threshold=0.9)
    assert dm.horizon == 10
    assert not dm.report_train_accuracy(0.85) and dm.horizon == 10
    assert dm.report_train_accuracy(0.95) and dm.horizon == 20
    for _ in range(10):
        dm.report_train_accuracy(1.0)
    assert dm.horizon == 100
    dm.next_train_batch()
    other = VariableBindingDataModule("T1")
    other.load_state_dict(dm.state_dict())
    assert other.horizon == 100 and other.batches_drawn == 1


def test_batches_are_deterministic_and_distinct():
    a, b = VariableBindingDataModule("T2", seed=3), VariableBindingDataModule("T2", seed=3)
    first = a.next_train_batch()[0]
    assert torch.equal(first, b.next_train_batch()[0])
    assert not torch.equal(first, a.next_train_batch()[0])
    assert not torch.equal(a.eval_set("val")[0][0], a.eval_set("test")[0][0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "T9"}, "task='T9' is invalid: expected one of 'T1', 'T2', 'T3', 'T4', 'custom'"),
        ({"task": "custom", "operator": [[0, 1, 1]], "dim": 0, "history": 1}, "d (dim)=0 is invalid"),
        ({"task": "custom", "operator": [[0, 1, 1]], "dim": 1, "history": 0}, "s (history)=0 is invalid"),
        ({"horizons": [10, 0]}, "horizon=0 is invalid: expected an integer >= 1"),
        ({"horizons": []}, "horizons=[] is invalid: expected a non-empty list of integers >= 1"),
        ({"horizons": 10}, "horizons=10 is invalid: expected a non-empty list of integers >= 1"),
        ({"seed": -1}, "seed=-1 is invalid: expected an integer >= 0"),
        ({"seed": 1.5}, "seed=1.5 is invalid: expected an integer >= 0"),
        ({"test_horizon": -5}, "test_horizon=-5 is invalid"),
        ({"task": "custom", "operator": [[0, 3, 1]], "dim": 1, "history": 2}, "lag=3 is invalid"),
        ({"task": "T1", "dim": 4}, "defined for d = s = 8"),
        ({"curriculum_threshold": 1.5}, "curriculum_threshold=1.5 is invalid"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        VariableBindingDataModule(**kwargs)
    assert "\n" not in str(err.value)


def test_only_none_means_the_default_curriculum():
    assert VariableBindingDataModule("T1").horizons == [10, 20, 40, 60, 100]
    assert VariableBindingDataModule("T1", horizons=None).horizons == [10, 20, 40, 60, 100]
    assert VariableBindingDataModule("T1", horizons=[30]).horizons == [30]
    with pytest.raises(ConfigError) as err:
        VariableBindingDataModule("T1", horizons=[])
    assert str(err.value) == "horizons=[] is invalid: expected a non-empty list of integers >= 1"


def test_the_command_line_refuses_an_empty_curriculum_and_a_negative_seed(capsys):
    from pathlib import Path

    from wavezoo.cli import main

    config = str(Path(__file__).resolve().parents[2] / "configs/variable_binding/elman.yaml")
    for option, message in (
        (["--data.horizons", "[]"], "horizons=[] is invalid: expected a non-empty list of integers >= 1"),
        (["--data.seed", "-1"], "seed=-1 is invalid: expected an integer >= 0"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["fit", "--config", config, "--trainer.logger", "false", "--trainer.max_steps", "1", *option])
        assert exit_.value.code == 2 and f"wavezoo: error: {message}" in capsys.readouterr().err
