"""Task types: per-step regression (masked MSE + sign accuracy) and per-step classification (cross-entropy)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torchmetrics import MeanMetric, MeanSquaredError, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from wavezoo.lit.base import SequenceTaskModule
from wavezoo.metrics import sign_agreement


class SequenceRegression(SequenceTaskModule):
    """Regression on the masked steps: loss = mean over masked steps, batch and dims of (y_hat - y)^2.

    Metrics: ``mse`` and, with ``sign_accuracy`` (the paper's accuracy for +-1 targets), ``acc`` = fraction of
    masked elements with sign(y_hat) == sign(y) (:func:`wavezoo.metrics.sign_agreement`).
    """

    task_type = "regression"

    def __init__(self, *args: Any, sign_accuracy: bool = True, **kwargs: Any) -> None:
        self.sign_accuracy = sign_accuracy
        super().__init__(*args, **kwargs)

    def build_metrics(self) -> MetricCollection:
        metrics = {"mse": MeanSquaredError()}
        if self.sign_accuracy:
            metrics["acc"] = MeanMetric()  # the mean of sign_agreement over every masked element
        return MetricCollection(metrics)

    def loss(self, outputs, targets, mask):
        return F.mse_loss(outputs[mask], targets[mask])

    def update_metrics(self, metrics, outputs, targets, mask) -> None:
        pred, true = outputs[mask].detach(), targets[mask]
        metrics["mse"].update(pred, true)
        if self.sign_accuracy:
            metrics["acc"].update(sign_agreement(pred, true).float())

    def batch_accuracy(self, outputs, targets, mask):
        if not self.sign_accuracy:
            return None
        return sign_agreement(outputs[mask], targets[mask]).float().mean()


class SequenceClassification(SequenceTaskModule):
    """Classification of every masked step: cross-entropy over ``output_size`` classes; metric ``acc`` (micro)."""

    task_type = "classification"

    def build_metrics(self) -> MetricCollection:
        classes = self.hparams.output_size
        return MetricCollection({"acc": MulticlassAccuracy(classes, average="micro", validate_args=False)})

    def loss(self, outputs, targets, mask):
        return F.cross_entropy(outputs[mask], targets[mask])

    def update_metrics(self, metrics, outputs, targets, mask) -> None:
        metrics["acc"].update(outputs[mask].detach().argmax(-1), targets[mask])

    def batch_accuracy(self, outputs, targets, mask):
        return (outputs[mask].argmax(-1) == targets[mask]).float().mean()
