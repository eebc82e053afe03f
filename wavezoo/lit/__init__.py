"""LightningModules: thin task wrappers around any registered model."""

from wavezoo.lit.base import SequenceTaskModule
from wavezoo.lit.tasks import SequenceClassification, SequenceRegression

__all__ = ["SequenceTaskModule", "SequenceRegression", "SequenceClassification"]
