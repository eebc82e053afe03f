"""LightningModules: losses, metrics, checkpoint round trip, curriculum reporting."""

import lightning.pytorch as pl
import pytest
import torch

from wavezoo import ConfigError
from wavezoo.data import CopyDataModule, VariableBindingDataModule
from wavezoo.lit import SequenceClassification, SequenceRegression


def make_trainer(tmp_path, **kwargs):
    defaults = dict(
        max_steps=6,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        limit_val_batches=1,
        gradient_clip_val=1.0,
    )
    return pl.Trainer(**{**defaults, **kwargs})


def test_masked_mse_and_sign_accuracy_ignore_masked_steps():
    module = SequenceRegression(model="elman", input_size=1, output_size=1, hidden_size=4)
    outputs = torch.tensor([[[0.5], [-2.0], [100.0]]])
    targets = torch.tensor([[[1.0], [-1.0], [0.0]]])
    mask = torch.tensor([[True, True, False]])
    assert module.loss(outputs, targets, mask) == pytest.approx((0.25 + 1.0) / 2)
    assert module.batch_accuracy(outputs, targets, mask) == 1.0
    assert module.batch_accuracy(-outputs, targets, mask) == 0.0


def test_classification_loss_uses_masked_steps_only():
    module = SequenceClassification(model="gru", input_size=2, output_size=3, hidden_size=4)
    logits = torch.tensor([[[10.0, 0, 0], [0, 10.0, 0]]])
    targets = torch.tensor([[0, 2]])
    mask = torch.tensor([[True, False]])
    assert module.loss(logits, targets, mask) < 1e-3
    assert module.batch_accuracy(logits, targets, torch.tensor([[True, True]])) == 0.5


def test_checkpoint_round_trip_without_arguments(tmp_path):
    data = VariableBindingDataModule("T2", horizons=[5], steps_per_epoch=3, val_batches=1, batch_size=8)
    module = SequenceRegression(
        model="lstm", input_size=8, output_size=8, hidden_size=12, model_kwargs={"num_layers": 2}, lr=3e-3
    )
    trainer = make_trainer(tmp_path)
    trainer.fit(module, datamodule=data)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    raw = torch.load(path, weights_only=True)  # primitive hyper-parameters only
    assert raw["hyper_parameters"]["model_kwargs"] == {"num_layers": 2}
    restored = SequenceRegression.load_from_checkpoint(path)
    assert restored.hparams.lr == 3e-3 and restored.net.rnn.num_layers == 2
    x = data.eval_set("test")[0][0]
    module.eval()
    restored.eval()
    assert torch.equal(module(x), restored(x))
    assert raw["VariableBindingDataModule"]["batches_drawn"] >= 6


def test_training_reports_to_the_curriculum(tmp_path):
    data = VariableBindingDataModule("T1", horizons=[2, 3], curriculum_threshold=0.01, steps_per_epoch=4)
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=8)
    make_trainer(tmp_path, max_steps=4, limit_val_batches=0).fit(module, datamodule=data)
    assert data.horizon == 3


def test_training_lowers_the_loss(tmp_path):
    torch.manual_seed(0)
    data = CopyDataModule(delay=2, copy_length=3, num_symbols=4, batch_size=32, steps_per_epoch=250)
    module = SequenceClassification(model="gru", input_size=6, output_size=5, hidden_size=32, lr=1e-2)
    trainer = make_trainer(tmp_path, max_steps=250, limit_val_batches=2)
    trainer.fit(module, datamodule=data)
    (result,) = trainer.test(module, datamodule=data, verbose=False)
    assert result["test/acc"] > 0.9  # chance is 0.25


def test_mismatched_task_type_is_refused(tmp_path):
    data = CopyDataModule(delay=2, steps_per_epoch=2)
    module = SequenceRegression(model="elman", input_size=10, output_size=9, hidden_size=4)
    with pytest.raises(ConfigError, match="CopyDataModule is a classification task but SequenceRegression"):
        make_trainer(tmp_path, max_steps=1).fit(module, datamodule=data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "lr=-1.0 is invalid: expected a finite number > 0"),
        ({"optimizer": "lbfgs"}, "optimizer='lbfgs' is invalid: expected one of 'adam'"),
        ({"scheduler": "onecycle"}, "scheduler='onecycle' is invalid"),
        ({"model": "mamba"}, "unknown model 'mamba'"),
        ({"loss_steps": "recall"}, "loss_steps='recall' is invalid: expected one of 'masked', 'all'"),
        ({"loss_scale": 0.0}, "loss_scale=0.0 is invalid"),
    ],
)
def test_bad_hyperparameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SequenceRegression(**{"model": "elman", "input_size": 1, "output_size": 1, **kwargs})


def test_loss_over_all_steps_and_its_scale_as_keller_et_al(tmp_path):
    """loss_steps='all' is the cross-entropy over every step (blanks too), scaled by loss_scale for the gradients
    only; the accuracy stays on the mask."""
    data = CopyDataModule(delay=3, copy_length=2, num_symbols=3, batch_size=4, steps_per_epoch=1)
    seen = {}

    class Capture(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            x, y, mask = batch
            with torch.no_grad():
                logits = module.net(x)
            seen[module.hparams.loss_steps] = (outputs["loss"].item(), logits, y, mask, outputs["accuracy"])

    for steps, scale in (("masked", 1.0), ("all", 0.25)):
        torch.manual_seed(0)
        module = SequenceClassification(model="gru", input_size=5, output_size=4, hidden_size=6, loss_steps=steps,
                                        loss_scale=scale, lr=1e-9)  # fmt: skip
        make_trainer(tmp_path, max_steps=1, callbacks=[Capture()], limit_val_batches=0).fit(module, datamodule=data)
    loss, logits, y, mask, accuracy = seen["all"]
    every_step = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert loss == pytest.approx(0.25 * every_step.item(), rel=1e-4)
    assert accuracy == (logits[mask].argmax(-1) == y[mask]).float().mean()  # the accuracy stays on the mask
    loss, logits, y, mask, _ = seen["masked"]
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits[mask], y[mask]).item(), rel=1e-4)


def test_curriculum_reads_the_accuracy_once_per_window_when_asked():
    """Per step on the CPU (the paper's rule); with a window (the accelerator default) one host read per window,
    advancing if any step of the window passed."""
    from types import SimpleNamespace

    from wavezoo.lit.curriculum import HorizonCurriculum

    def run(callback, accuracies):
        data = VariableBindingDataModule("T1", horizons=[2, 3, 4], curriculum_threshold=0.5)
        reads = []
        report = data.report_train_accuracy
        data.report_train_accuracy = lambda a: reads.append(a) or report(a)
        # global_step 2 and a huge interval: no step logs the horizon (step 1 does, for the progress bar)
        trainer = SimpleNamespace(datamodule=data, world_size=1, global_step=2, log_every_n_steps=10**9)
        module = SimpleNamespace(device=torch.device("cpu"))
        stages = []
        for accuracy in accuracies:
            callback.on_train_batch_end(trainer, module, {"accuracy": torch.tensor(accuracy)}, None, 0)
            stages.append(data.stage)
        return reads, stages

    accuracies = [0.1, 0.9, 0.2, 0.1, 0.3, 0.2, 0.9, 0.1]
    reads, stages = run(HorizonCurriculum(), accuracies)
    assert len(reads) == 8 and stages == [0, 1, 1, 1, 1, 1, 2, 2]  # the CPU default: every step
    reads, stages = run(HorizonCurriculum(check_every_n_steps=4), accuracies)
    assert reads == pytest.approx([0.9, 0.9]) and stages == [0, 0, 0, 1, 1, 1, 1, 2]  # one read per 4 steps


def test_training_is_teacher_forced_and_evaluation_generates():
    """sbc_transformer (autoregressive): the training loss reads the teacher-forced outputs (the targets stand in
    for the generated tokens), validation the outputs the model generates itself."""
    torch.manual_seed(0)
    data = VariableBindingDataModule("T1", horizons=[12], batch_size=4)
    module = SequenceRegression(model="sbc_transformer", input_size=8, output_size=8, hidden_size=64,
                                model_kwargs={"history": 8, "input_mode": "replace", "input_steps": 8})  # fmt: skip
    x, y, mask = data.next_train_batch()
    forced, generated = module.net.training_forward(x, y), module(x)
    assert not torch.allclose(forced[mask], generated[mask])
    loss = module.training_step((x, y, mask), 0)["loss"].item()
    assert loss == pytest.approx(module.loss(forced, y, mask).item())
