"""The waves in TensorBoard during training: what the paper is about, drawn at every validation of a fit.

:class:`WaveImages` logs, for the recurrent and wave families, at the end of every validation of a fit:

- ``waves/hidden_state``: the state of the model over a fixed probe sequence (the first sequence of the first
  validation batch), rows = state units, columns = time steps, red > 0 > blue, scaled to the largest magnitude;
- ``waves/hidden_state_wave_basis``: the same state in the paper's wave basis, Psi^+ h(t) (rows = lattice cells
  (k, j), oldest wave column first), and ``waves/W_hh_wave_basis``: Psi^+ W_hh Psi on the paper's -1.7..1.7 range,
  where the model has a linear recurrence (:func:`wavezoo.analysis.linearize`: elman, irnn, wave_rnn, twm_lbc) and
  the DataModule a ``history`` s (:func:`wavezoo.analysis.wave_basis`: power iteration from pinv(W_r));
- ``waves/spectrum``: the eigenvalues of the recurrent operator (W_hh of that linear recurrence; otherwise the
  Jacobian d s(t) / d s(t-1) of the model's ``step`` at the zero state and a zero input) against the unit circle;

and, for every family, ``hp_metric`` = the monitored metric of the checkpoint callback (``val/loss`` by default) at
that validation, so TensorBoard's HParams tab compares runs by it (Lightning writes -1 there at the start).

Everything goes through the models' public API (``initial_state``/``step``, ``hidden_states``, the lens'
``linearize``). Images are drawn directly as tensors (no matplotlib), so the cost is a probe's forward pass and an
eigen-decomposition per validation: ``python -m benchmarks.wave_images`` measures it against the same run without.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn

from wavezoo.errors import ConfigError

RNN_FAMILIES = ("elman", "irnn", "gru", "lstm")
WAVE_FAMILIES = ("wave_rnn", "twm_lbc", "twm_sbc", "sbc_transformer", "lbc_ssm")
W_LIMIT = 1.7  # the paper's colour range for W_hh in the wave basis


def heatmap(values: torch.Tensor, limit: float | None = None) -> torch.Tensor:
    """A 2-d tensor as an RGB image ``[3, H, W]`` in [0, 1]: red > 0, blue < 0, white 0, scaled to ``limit``
    (default: the largest magnitude); small images are enlarged by an integer factor."""
    values = values.detach().float().cpu()
    scale = limit if limit is not None else float(values.abs().max())
    v = (values / scale).clamp(-1, 1) if scale > 0 else torch.zeros_like(values)
    pos, neg = v.clamp(min=0), (-v).clamp(min=0)
    image = torch.stack([1 - neg, 1 - pos - neg, 1 - pos])
    factor = max(1, 256 // max(values.shape))
    return image.repeat_interleave(factor, 1).repeat_interleave(factor, 2)


def spectrum_image(eigenvalues: torch.Tensor, size: int = 192) -> torch.Tensor:
    """Eigenvalues in the complex plane as an RGB image ``[3, size, size]``: the unit circle and the axes in grey,
    each eigenvalue a red dot; the view spans +-1.25 or 1.1 x the largest modulus (up to 3)."""
    radius = min(3.0, max(1.25, 1.1 * float(eigenvalues.abs().max()) if eigenvalues.numel() else 1.25))
    image = torch.ones(3, size, size)
    to_pixel = lambda z: ((z / radius + 1) * (size - 1) / 2).round().long()  # noqa: E731
    centre = (size - 1) // 2
    image[:, centre, :] = image[:, :, centre] = 0.85
    angles = torch.linspace(0, 2 * math.pi, 4 * size)
    cols, rows = to_pixel(torch.cos(angles)), to_pixel(-torch.sin(angles))  # rows grow downwards: -imag
    image[:, rows.clamp(0, size - 1), cols.clamp(0, size - 1)] = 0.5
    eig = eigenvalues.to(torch.complex128)
    cols, rows = to_pixel(eig.real.float()), to_pixel(-eig.imag.float())
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = (rows + dr).clamp(0, size - 1), (cols + dc).clamp(0, size - 1)
            image[0, r, c], image[1, r, c], image[2, r, c] = 0.85, 0.1, 0.1
    return image


def state_vector(state: Any) -> torch.Tensor:
    """The floating-point tensors of a model state (tensor or nested tuple) for the first sequence, as one vector."""
    if isinstance(state, torch.Tensor):
        return state[0].reshape(-1) if state.is_floating_point() else state.new_zeros(0, dtype=torch.float32)
    parts = [state_vector(s) for s in state]
    return torch.cat([p.float() for p in parts]) if parts else torch.zeros(0)


def hidden_trace(net: torch.nn.Module, probe: torch.Tensor) -> torch.Tensor:
    """The model's state over ``probe`` (one sequence, ``[1, T, ...]``): ``[T, state units]``."""
    if hasattr(net, "hidden_states") and probe.is_floating_point():
        return net.hidden_states(probe)[0]
    state = net.initial_state(1, device=probe.device)
    trace = []
    for t in range(probe.shape[1]):
        _, state = net.step(probe[:, t], state)
        trace.append(state_vector(state))
    return torch.stack(trace)


def _replace_floats(state: Any, flat: torch.Tensor, offset: int = 0) -> tuple[Any, int]:
    if isinstance(state, torch.Tensor):
        if not state.is_floating_point():
            return state, offset
        size = state[0].numel()
        return flat[offset : offset + size].reshape(state[0].shape).unsqueeze(0).to(state.dtype), offset + size
    items = []
    for s in state:
        item, offset = _replace_floats(s, flat, offset)
        items.append(item)
    return type(state)(items), offset


def step_jacobian(net: torch.nn.Module, probe: torch.Tensor) -> torch.Tensor:
    """d s(t) / d s(t-1) of ``net.step`` at the zero state, for a zero input (token models: token 0)."""
    state = net.initial_state(1, device=probe.device)
    x0 = torch.zeros_like(probe[:, 0])
    start = state_vector(state)

    def next_state(flat: torch.Tensor) -> torch.Tensor:
        return state_vector(net.step(x0, _replace_floats(state, flat)[0])[1])

    return torch.autograd.functional.jacobian(next_state, start, vectorize=True)


class WaveImages(Callback):
    """Logs the waves to TensorBoard at every validation of a fit (see the module docstring).

    Args:
        enabled: ``False`` turns the images and ``hp_metric`` off (``wavezoo fit ... --waves.enabled false``).
        max_steps_shown: the probe's first steps drawn (its state is computed over all of them).
    """

    def __init__(self, enabled: bool = True, max_steps_shown: int = 512) -> None:
        self.enabled = enabled
        self.max_steps_shown = max_steps_shown
        self.probe: torch.Tensor | None = None

    @staticmethod
    def experiments(trainer: pl.Trainer) -> list[Any]:
        return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        if not trainer.is_global_zero:
            return
        writers = self.experiments(trainer)
        if not writers:
            return
        self.log_hp_metric(trainer, writers)
        net = getattr(pl_module, "net", None)
        if pl_module.hparams.get("model") not in RNN_FAMILIES + WAVE_FAMILIES or net is None:
            return
        images = self.draw(trainer, pl_module, net)
        for writer in writers:
            for tag, image in images.items():
                writer.add_image(tag, image, trainer.global_step, dataformats="CHW")

    def log_hp_metric(self, trainer: pl.Trainer, writers: list[Any]) -> None:
        monitor = getattr(trainer.checkpoint_callback, "monitor", None)
        value = trainer.callback_metrics.get(monitor) if monitor else None
        if value is not None:
            for writer in writers:
                writer.add_scalar("hp_metric", float(value), trainer.global_step)

    def probe_sequence(self, trainer: pl.Trainer) -> torch.Tensor | None:
        """The first sequence of the first validation batch (kept from the first validation on)."""
        if self.probe is None:
            loaders = trainer.val_dataloaders
            loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
            if loader is None:
                return None
            batch = next(iter(loader))
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            self.probe = x[:1].detach().cpu()
        return self.probe

    @torch.no_grad()
    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        from wavezoo.analysis import eigenvalues, linearize, wave_basis

        probe = self.probe_sequence(trainer)
        if probe is None:
            return {}
        probe = probe.to(pl_module.device)
        was_training = net.training
        net.eval()
        try:
            hidden = hidden_trace(net, probe)[: self.max_steps_shown].double().cpu()  # [T, N]
            images = {"waves/hidden_state": heatmap(hidden.T)}
            try:
                recurrence = linearize(net)
            except ConfigError:  # no linear recurrence: the Jacobian of a step at the zero state
                recurrence = None
            if recurrence is not None:
                w_hh = recurrence.w_hh.detach().double().cpu()
                history = getattr(trainer.datamodule, "history", None)
                if isinstance(history, int) and history * recurrence.w_r.shape[0] <= w_hh.shape[0]:
                    basis = wave_basis(w_hh, recurrence.w_r.detach().cpu(), history)
                    images["waves/hidden_state_wave_basis"] = heatmap(basis.coordinates(hidden).T)
                    images["waves/W_hh_wave_basis"] = heatmap(basis.weights(w_hh), limit=W_LIMIT)
            else:
                with torch.enable_grad():
                    w_hh = step_jacobian(net, probe).double().cpu()
            if w_hh.numel():
                images["waves/spectrum"] = spectrum_image(eigenvalues(w_hh))
        finally:
            net.train(was_training)
        return images
