"""The thin LightningModule shared by every task type: builds a zoo model by name, optimises, logs, reports.

With ``vocab_size`` set, the model reads token ids ``[batch, time]`` (int64), embedded by its
``nn.Embedding(vocab_size, embedding_dim)`` front-end (:meth:`wavezoo.models.base.SequenceModel.add_token_embedding`).

All constructor arguments are primitives (str/int/float/bool/dict), saved with ``save_hyperparameters()``, so
``Module.load_from_checkpoint(path)`` needs no extra argument and works with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torchmetrics import MeanMetric, MetricCollection

from wavezoo.errors import ConfigError, check_choice, check_positive_float
from wavezoo.lit.curriculum import HorizonCurriculum
from wavezoo.registry import build_model
from wavezoo.trust import check_lightning_checkpoint, read_checkpoint, resolve_class

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
LOSS_STEPS = ("masked", "all")
SCHEDULERS = {
    "none": None,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "step": torch.optim.lr_scheduler.StepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
}


def check_scheduler_kwargs(scheduler: str, kwargs: Any) -> None:
    """Refuse ``scheduler_kwargs`` that are not keyword arguments of the chosen torch scheduler."""
    if kwargs is None:
        return
    if not isinstance(kwargs, dict):
        raise ConfigError(f"scheduler_kwargs={kwargs!r} is invalid: expected a mapping of keyword arguments")
    cls = SCHEDULERS[scheduler]
    allowed = [] if cls is None else [p for p in inspect.signature(cls).parameters if p not in ("optimizer", "verbose")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"scheduler_kwargs key {unknown[0]!r} is invalid for scheduler={scheduler!r}: expected "
            f"{'one of ' + ', '.join(map(repr, allowed)) if allowed else 'none (no scheduler is used)'}"
        )


def keep_device(storage, location: str):
    """``torch.load``'s ``map_location`` of Lightning's loader: storages stay where they were saved, except on an
    accelerator this machine lacks (then the CPU)."""
    if location.startswith("cuda") and not torch.cuda.is_available():
        return storage.cpu()
    if location.startswith("mps") and not torch.backends.mps.is_available():
        return storage.cpu()
    return None


class SequenceTaskModule(pl.LightningModule):
    """Wraps any registered model for one task type. Subclasses define the loss and the metrics.

    Args:
        model: registered model name (see ``wavezoo.list_models()``).
        input_size / output_size: set from the DataModule by the CLI (``link_arguments``).
        hidden_size: number of recurrent state units of the model.
        model_kwargs: family-specific keyword arguments of the model builder.
        optimizer: one of ``adam``, ``adamw``, ``sgd``, ``rmsprop``.
        lr / weight_decay: optimizer learning rate and L2 penalty (the paper's "L2").
        scheduler: ``none``, ``cosine`` (over ``trainer.max_steps``), ``step`` or ``exponential``;
            ``scheduler_kwargs`` go to the torch scheduler (``step_size``/``gamma``...).
        loss_steps: the steps the loss covers: ``"masked"`` (the DataModule's mask, where the metrics are
            measured) or ``"all"`` (every step, as Keller et al.'s copy task: blanks are targets too). The metrics
            always use the mask.
        loss_scale: multiplies the training loss (Keller et al.'s copy task divides its mean cross-entropy by the
            batch size: 1 / 128); it changes the gradients' size, hence what gradient clipping does. The logged
            losses are unscaled.
        vocab_size: token inputs. ``None`` (default): inputs are float features ``[batch, time, input_size]``.
            An integer: inputs are token ids ``[batch, time]`` in ``0 .. vocab_size - 1`` (the recall tasks of
            :mod:`wavezoo.data.recall`; the CLI links it from the DataModule's ``vocab_size``), embedded by
            the model's ``token_embedding`` (``nn.Embedding``); ``input_size`` is then not used (the CLI sets
            it to the DataModule's, which equals ``vocab_size``).
        embedding_dim: width of the embedding, i.e. the registered model's input size (only with
            ``vocab_size``). Default ``None``: ``hidden_size``, the model's width, as the recall papers' models
            embed tokens to their model dimension. The embedding belongs to the model (``net.token_embedding``),
            so a published token model loads and runs without this module.
    """

    task_type = "regression"

    def __init__(
        self,
        model: str = "elman",
        input_size: int = 1,
        output_size: int = 1,
        hidden_size: int = 128,
        model_kwargs: dict[str, Any] | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        scheduler_kwargs: dict[str, Any] | None = None,
        loss_steps: str = "masked",
        loss_scale: float = 1.0,
        vocab_size: int | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_choice("loss_steps", loss_steps, LOSS_STEPS)
        check_positive_float("loss_scale", loss_scale)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_choice("scheduler", scheduler, SCHEDULERS)
        check_positive_float("lr", lr)
        check_positive_float("weight_decay", weight_decay, allow_zero=True)
        check_scheduler_kwargs(scheduler, scheduler_kwargs)
        self.net = build_model(
            model,
            input_size=input_size,
            output_size=output_size,
            hidden_size=hidden_size,
            vocab_size=vocab_size,
            embedding_dim=embedding_dim,
            **(model_kwargs or {}),
        )
        metrics = self.build_metrics()  # epoch-level metrics of the evaluation loops (synced across devices)
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # The evaluation loss, weighted by masked steps and synced as sums: exact whatever the devices' shares.
        self.eval_losses = torch.nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    # -- what a task type defines ---------------------------------------------------------------------------
    def build_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, outputs, targets, mask) -> None:
        raise NotImplementedError

    def batch_accuracy(self, outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """Accuracy of one batch on the masked steps (``None`` if the task has no accuracy)."""
        return None

    # -- checkpoints ----------------------------------------------------------------------------------------
    ARCHITECTURE_KEYS = ("model", "input_size", "output_size", "hidden_size", "model_kwargs")
    ARCHITECTURE_KEYS += ("vocab_size", "embedding_dim")  # the token embedding (absent from older checkpoints)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, in one line, a checkpoint that fails :func:`wavezoo.trust.check_lightning_checkpoint` or was
        trained with another architecture than this module's."""
        check_lightning_checkpoint(checkpoint, "the checkpoint", SequenceTaskModule)
        saved = checkpoint.get("hyper_parameters") or {}
        differ = [
            f"{key}={saved[key]!r} (this model: {self.hparams.get(key)!r})"
            for key in self.ARCHITECTURE_KEYS
            if key in saved and (saved[key] or None) != (self.hparams.get(key) or None)  # None == {} for kwargs
        ]
        if differ:
            raise ConfigError(f"the checkpoint was trained with another architecture: {', '.join(differ)}")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as err:
            missing = sorted(set(self.state_dict()) - set(state_dict))
            unexpected = sorted(set(state_dict) - set(self.state_dict()))
            if not (missing or unexpected):  # same keys, other shapes
                raise ConfigError(f"the checkpoint's weights do not fit {self.hparams.model!r}: shapes differ") from err
            raise ConfigError(
                f"the checkpoint's weights do not fit model {self.hparams.model!r}: missing keys "
                f"{missing[:4] or 'none'}, unexpected keys {unexpected[:4] or 'none'}"
            ) from err

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs):
        """The module of a checkpoint, rebuilt by wavezoo from checked hyper-parameters; Lightning sees only weights.

        :func:`wavezoo.trust.read_checkpoint` checks the file before any tensor is read (records, plain
        hyper-parameters, claimed sizes and dtypes) and reads it with ``weights_only=True``; the class is ``cls``
        or the checkpoint's ``_class_path`` (a subclass of ``cls`` inside wavezoo), built with the hyper-parameters
        (``kwargs`` override them), then ``on_load_checkpoint`` and a strict ``load_state_dict``. Nothing is handed
        to jsonargparse or to an instantiator named by the file."""
        if kwargs.pop("weights_only", True) is not True:
            raise ConfigError("weights_only must stay True: wavezoo never unpickles code from a checkpoint")
        if hparams_file is not None:
            raise ConfigError("hparams_file is not supported: the hyper-parameters come from the checked checkpoint")
        source = f"checkpoint {str(checkpoint_path)!r}"
        checkpoint = read_checkpoint(checkpoint_path, map_location or keep_device, base=SequenceTaskModule)
        hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_")}
        class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
        target = cls if class_path is None else resolve_class(class_path, cls, f"{source}: _class_path")
        try:
            module = target(**{**hparams, **kwargs})
        except TypeError as err:
            raise ConfigError(f"{source}: its hyper_parameters do not fit {target.__name__} ({err})") from None
        module.on_load_checkpoint(checkpoint)
        module.load_state_dict(checkpoint["state_dict"], strict=module.strict_loading if strict is None else strict)
        device = next((t.device for t in checkpoint["state_dict"].values()), torch.device("cpu"))
        return module.to(device)

    # -- streaming ------------------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device | str | None = None):
        """The model's state before the first step (see :meth:`wavezoo.models.base.SequenceModel.initial_state`),
        on this module's device and dtype."""
        return self.net.initial_state(batch_size, device=device or self.device, dtype=self.dtype)

    def step(self, x_t: torch.Tensor, state):
        """One step of the model on one input step (``[batch, input_size]`` features, or ``[batch]`` token ids with
        ``vocab_size``): ``(y_t [batch, output_size], new state)``. Stepping over a sequence equals :meth:`forward`."""
        return self.net.step(x_t, state)

    # -- Lightning hooks ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_type = getattr(datamodule, "task_type", None)
        if data_type is not None and data_type != self.task_type:
            raise ConfigError(
                f"{type(datamodule).__name__} is a {data_type} task but {type(self).__name__} is for "
                f"{self.task_type}; pick the matching module (SequenceRegression or SequenceClassification)"
            )
        data_vocab = getattr(datamodule, "vocab_size", None)
        vocab = self.hparams.get("vocab_size")
        if data_vocab is not None and (vocab is None or vocab < data_vocab):
            raise ConfigError(
                f"{type(datamodule).__name__} yields token ids in 0..{data_vocab - 1} but {type(self).__name__} has "
                f"vocab_size={vocab}; set vocab_size={data_vocab} (the wavezoo command links it from the data)"
            )

    def training_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """The loss, and the batch accuracy for the curriculum (:class:`~wavezoo.lit.curriculum.HorizonCurriculum`)."""
        x, y, mask = batch
        outputs = self.net.training_forward(x, y)  # forward(x), or teacher-forced (sbc_transformer's default)
        loss = self.loss(outputs, y, self.loss_mask(mask))
        accuracy = self.batch_accuracy(outputs.detach(), y, mask)
        logs = {"train/loss": loss.detach()}
        if accuracy is not None:
            logs["train/acc"] = accuracy
        # Lightning's log() costs about a millisecond a call: log training values only on logging steps.
        # The first step too: the progress bar then shows a loss from the start (loggers write on logging steps only).
        if self.global_step == 0 or (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) == 0:
            self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(x))
        scale = self.hparams.get("loss_scale", 1.0)
        return {"loss": loss if scale == 1.0 else loss * scale, "accuracy": accuracy}

    def loss_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The steps the loss covers (``loss_steps``): the metric mask, or every step."""
        return mask if self.hparams.get("loss_steps", "masked") == "masked" else torch.ones_like(mask)

    def configure_callbacks(self) -> list[Callback]:
        """The curriculum, unless the Trainer has one already (its own, or ours from an earlier ``fit`` of the same
        Trainer: Lightning would report that it "overrides" it, e.g. at ``--test_after_fit``)."""
        trainer = self._trainer
        if trainer is not None and any(isinstance(c, HorizonCurriculum) for c in trainer.callbacks):
            return []
        return [HorizonCurriculum()]

    def _evaluation_step(self, batch, metrics: MetricCollection, stage: str) -> None:
        x, y, mask = batch
        outputs = self(x)
        loss_mask = self.loss_mask(mask)
        self.eval_losses[stage].update(self.loss(outputs, y, loss_mask), weight=loss_mask.sum())
        self.log(f"{stage}/loss", self.eval_losses[stage], prog_bar=True, batch_size=len(x))
        self.update_metrics(metrics, outputs, y, mask)
        self.log_dict(metrics, prog_bar=True, batch_size=len(x))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, self.val_metrics, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, self.test_metrics, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = OPTIMIZERS[hp.optimizer](self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        kwargs = dict(hp.scheduler_kwargs or {})
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "cosine":
            total = kwargs.pop("T_max", None) or self.trainer.max_steps
            if total is None or total < 1:
                raise ConfigError("scheduler='cosine' needs trainer.max_steps > 0 or scheduler_kwargs.T_max")
            kwargs["T_max"] = total
        defaults = {"step": {"step_size": 1000}, "exponential": {"gamma": 0.999}}.get(hp.scheduler, {})
        try:
            scheduler = SCHEDULERS[hp.scheduler](optimizer, **{**defaults, **kwargs})
        except (TypeError, ValueError) as err:
            reason = f"scheduler_kwargs={hp.scheduler_kwargs!r} are invalid for {hp.scheduler!r}: {err}"
            raise ConfigError(reason) from None
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
