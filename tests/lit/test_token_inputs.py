"""Task modules with token inputs (``vocab_size``): embedding, training on a recall task, checkpoints, streaming,
predictions, the CLI link, and one-line errors."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from wavezoo import ConfigError
from wavezoo.data import InductionHeadDataModule, MQARDataModule
from wavezoo.lit import SequenceClassification

ROOT = Path(__file__).resolve().parents[2]


def make_trainer(tmp_path, **kwargs):
    defaults = dict(
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    return pl.Trainer(**{**defaults, **kwargs})


def test_embedding_front_end_sizes():
    module = SequenceClassification(model="lstm", vocab_size=12, output_size=12, hidden_size=16)
    assert (
        tuple(module.net.token_embedding.weight.shape) == (12, 16) and module.net.input_size == 16
    )  # default: hidden_size
    module = SequenceClassification(model="gru", vocab_size=12, output_size=5, hidden_size=16, embedding_dim=4)
    assert tuple(module.net.token_embedding.weight.shape) == (12, 4) and module.net.input_size == 4
    assert module(torch.randint(0, 12, (3, 7))).shape == (3, 7, 5)
    plain = SequenceClassification(model="gru", input_size=3, output_size=5, hidden_size=4)
    assert plain.net.token_embedding is None and plain(torch.randn(2, 6, 3)).shape == (2, 6, 5)


def test_trains_on_a_recall_task_and_reloads_with_equal_outputs(tmp_path):
    torch.manual_seed(0)
    data = InductionHeadDataModule(vocab_size=8, length=12, batch_size=32, steps_per_epoch=150, val_batches=2)
    module = SequenceClassification(model="lstm", vocab_size=8, output_size=8, hidden_size=32, lr=1e-2)
    x, y, mask = data.eval_set("val")[0]
    before = module.loss(module(x), y, mask).item()
    trainer = make_trainer(tmp_path, max_steps=150, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    module.eval()
    after = module.loss(module(x), y, mask).item()
    assert after < 0.5 * before  # ln(8) ~ 2.1 at the start

    path = tmp_path / "tokens.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, weights_only=True)
    assert raw["hyper_parameters"]["vocab_size"] == 8 and raw["hyper_parameters"]["embedding_dim"] is None
    restored = SequenceClassification.load_from_checkpoint(path).eval()
    assert torch.equal(module(x), restored(x))
    assert torch.equal(module.net.token_embedding.weight, restored.net.token_embedding.weight)

    predictions = make_trainer(tmp_path).predict(restored, datamodule=data)
    assert predictions[0].shape == (32, 12, 8)
    with torch.no_grad():  # the test set was drawn in the predict loop's inference mode
        assert torch.allclose(predictions[0], restored(data.eval_set("test")[0][0]))

    with pytest.raises(ConfigError, match=r"another architecture: vocab_size=8 \(this model: 9\)"):
        SequenceClassification(model="lstm", vocab_size=9, output_size=8, hidden_size=32).on_load_checkpoint(raw)
    raw["hyper_parameters"]["vocab_size"] = 10**9  # a file that claims a huge embedding: refused before allocating
    torch.save(raw, tmp_path / "claims.ckpt")
    with pytest.raises(
        ConfigError, match=r"token_embedding.weight of shape \(1000000000, 32\), the file holds \(8, 32\)"
    ):
        SequenceClassification.load_from_checkpoint(tmp_path / "claims.ckpt")


@pytest.mark.parametrize(("model", "kwargs"), [("lstm", {}), ("lbc_ssm", {"state_size": 4, "num_layers": 1})])
def test_stepping_with_token_ids_equals_the_sequence_map(model, kwargs):
    torch.manual_seed(0)
    module = SequenceClassification(
        model=model, vocab_size=6, output_size=6, hidden_size=8, embedding_dim=3, model_kwargs=kwargs
    ).eval()
    tokens = torch.randint(0, 6, (2, 9))
    state, steps = module.initial_state(2), []
    for t in range(tokens.shape[1]):
        y_t, state = module.step(tokens[:, t], state)
        steps.append(y_t)
    assert torch.allclose(torch.stack(steps, dim=1), module(tokens), atol=1e-5)


def test_the_cli_links_vocab_size_from_the_data():
    from wavezoo.cli import build_cli

    quiet = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]
    cli = build_cli(["--config", str(ROOT / "configs/mqar/lbc_ssm.yaml"), *quiet], run=False)
    assert cli.model.hparams.vocab_size == cli.datamodule.vocab_size == 32
    assert tuple(cli.model.net.token_embedding.weight.shape) == (32, 32) and cli.model.net.input_size == 32
    cli = build_cli(["--config", str(ROOT / "configs/copy/gru.yaml"), *quiet], run=False)
    assert cli.model.hparams.vocab_size is None and cli.model.net.token_embedding is None


def test_token_errors_are_one_line(tmp_path):
    module = SequenceClassification(model="gru", vocab_size=5, output_size=5, hidden_size=4)
    with pytest.raises(ConfigError, match=r"token ids must lie in 0..4 \(vocab_size=5\); got ids from 0 to 5"):
        module(torch.tensor([[0, 5]]))
    with pytest.raises(ConfigError, match=r"has vocab_size=5 and expects integer token ids, got torch.float32"):
        module(torch.randn(1, 3, 5))
    plain = SequenceClassification(model="gru", input_size=5, output_size=5, hidden_size=4)
    with pytest.raises(
        ConfigError, match=r"got integer input \(torch.int64, shape \(1, 2\)\) but reads float features"
    ):
        plain(torch.tensor([[0, 1]]))
    with pytest.raises(ConfigError, match=r"embedding_dim=4 is invalid without vocab_size"):
        SequenceClassification(model="gru", input_size=5, output_size=5, embedding_dim=4)
    with pytest.raises(ConfigError, match=r"vocab_size=0 is invalid: expected an integer >= 1"):
        SequenceClassification(model="gru", vocab_size=0, output_size=5)
    data = MQARDataModule(steps_per_epoch=1)  # ids 0..31
    for small in (plain, module):
        with pytest.raises(ConfigError, match=r"MQARDataModule yields token ids in 0..31 but .* set vocab_size=32"):
            make_trainer(tmp_path, max_steps=1).fit(small, datamodule=data)
