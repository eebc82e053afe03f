"""DataModules of the zoo: synthetic history-dependent tasks and classical memory benchmarks."""

from wavezoo.data.base import SyntheticDataModule
from wavezoo.data.history import HDSDataModule, HistoryTaskDataModule, VariableBindingDataModule
from wavezoo.data.memory import AddingDataModule, CopyDataModule
from wavezoo.data.operators import VARIABLE_BINDING_TASKS

__all__ = [
    "SyntheticDataModule",
    "HistoryTaskDataModule",
    "VariableBindingDataModule",
    "HDSDataModule",
    "CopyDataModule",
    "AddingDataModule",
    "VARIABLE_BINDING_TASKS",
]
