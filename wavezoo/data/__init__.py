"""DataModules of the zoo: synthetic history-dependent tasks, classical memory benchmarks, token recall tasks and
real-data sequence classification benchmarks."""

from wavezoo.core.operators import VARIABLE_BINDING_TASKS
from wavezoo.data.base import SyntheticDataModule
from wavezoo.data.benchmarks import (
    DigitsDataModule,
    MNIST1DDataModule,
    NoisySequentialCIFARDataModule,
    SequentialMNISTDataModule,
    UCRDataModule,
    ucr_names,
)
from wavezoo.data.history import HDSDataModule, HistoryTaskDataModule, VariableBindingDataModule
from wavezoo.data.memory import AddingDataModule, CopyDataModule
from wavezoo.data.recall import (
    AssociativeRecallDataModule,
    InductionHeadDataModule,
    MQARDataModule,
    SelectiveCopyDataModule,
    TokenTaskDataModule,
)
from wavezoo.data.sequences import SequenceDataModule

__all__ = [
    "SyntheticDataModule",
    "HistoryTaskDataModule",
    "VariableBindingDataModule",
    "HDSDataModule",
    "CopyDataModule",
    "AddingDataModule",
    "TokenTaskDataModule",
    "InductionHeadDataModule",
    "AssociativeRecallDataModule",
    "MQARDataModule",
    "SelectiveCopyDataModule",
    "VARIABLE_BINDING_TASKS",
    "SequenceDataModule",
    "DigitsDataModule",
    "MNIST1DDataModule",
    "UCRDataModule",
    "ucr_names",
    "SequentialMNISTDataModule",
    "NoisySequentialCIFARDataModule",
]
