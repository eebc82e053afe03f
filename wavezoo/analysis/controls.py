"""Control networks for the wave lens: each keeps some structure of the trained network and breaks something else.

* ``untrained``: the same architecture freshly initialised (keeps nothing learned);
* ``gaussian``: W_hh replaced by a Gaussian matrix of the trained W_hh's spectral radius (keeps W_uh, W_r, radius);
* ``scramble``: W_hh -> Q W_hh Q^T with a random orthogonal Q, W_uh and W_r kept (keeps the spectrum exactly and
  breaks the alignment of the memory with the input and readout maps: the spectrum-matched control of C6 and C9);
* ``rotated``: Q on all three maps, W_hh -> Q W_hh Q^T, W_uh -> Q W_uh, W_r -> W_r Q^T (and the cell's biases
  -> Q b). The linearisation at 0 is the trained one in another basis, so every linear figure is unchanged; the
  tanh is not rotation-equivariant, so a network that computes through saturation stops solving its task.

Surgery needs the weights of a one-layer Elman cell (:func:`surgery_ready`); other families get ``untrained`` only.
"""

from __future__ import annotations

import copy

import torch

from wavezoo.analysis.spectra import eigenvalues
from wavezoo.errors import ConfigError
from wavezoo.registry import build_model

RANDOM_SEED = 1234
ROTATION_SEED = 4321


def fresh_copy(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same architecture at initialisation (seeded), from the model's ``wavezoo_config``."""
    config = getattr(net, "wavezoo_config", None)
    if config is None:
        raise ConfigError(f"{type(net).__name__} was not built by wavezoo.create_model: no untrained control")
    torch.manual_seed(seed)
    return build_model(config["family"], **config["sizes"], **config["model_kwargs"]).eval()


def surgery_ready(net: torch.nn.Module) -> bool:
    """Whether ``net`` is a one-layer Elman cell whose maps the weight controls can replace."""
    from wavezoo.models.rnn import RecurrentBaseline

    return isinstance(net, RecurrentBaseline) and net.cell == "rnn" and net.rnn.num_layers == 1


def random_recurrent(w_hh: torch.Tensor, seed: int = RANDOM_SEED) -> torch.Tensor:
    """A Gaussian matrix with the spectral radius of ``w_hh`` (same shape)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(w_hh.shape, generator=g, dtype=torch.float64)
    radius = eigenvalues(w_hh).abs().max()
    return w * radius / eigenvalues(w).abs().max()


def orthogonal(size: int, seed: int = ROTATION_SEED) -> torch.Tensor:
    """A random orthogonal ``[size, size]`` matrix (QR of a Gaussian matrix, signs fixed), float64."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(size, size, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def with_recurrent(net: torch.nn.Module, w_hh: torch.Tensor) -> torch.nn.Module | None:
    """A copy of a one-layer Elman ``net`` whose W_hh is ``w_hh`` (``None`` for other families)."""
    if not surgery_ready(net):
        return None
    other = copy.deepcopy(net)
    with torch.no_grad():
        other.rnn.weight_hh_l0.copy_(w_hh.to(other.rnn.weight_hh_l0.dtype))
    return other


def gaussian(net: torch.nn.Module) -> torch.nn.Module | None:
    """W_hh -> a Gaussian matrix of the same spectral radius (``None`` for other families)."""
    if not surgery_ready(net):
        return None
    return with_recurrent(net, random_recurrent(net.rnn.weight_hh_l0.detach().double()))


def scramble(net: torch.nn.Module, seed: int = ROTATION_SEED) -> torch.nn.Module | None:
    """W_hh -> Q W_hh Q^T, W_uh and W_r kept: the same eigenvalues, the memory misaligned with input and readout."""
    if not surgery_ready(net):
        return None
    w = net.rnn.weight_hh_l0.detach().double()
    q = orthogonal(w.shape[0], seed)
    return with_recurrent(net, q @ w @ q.T)


def rotate(net: torch.nn.Module, seed: int = ROTATION_SEED) -> torch.nn.Module | None:
    """Q on W_hh, W_uh, W_r (and the cell's biases): the same linearisation in another basis, not the same tanh."""
    if not surgery_ready(net):
        return None
    other = copy.deepcopy(net)
    rnn, q = other.rnn, orthogonal(net.rnn.weight_hh_l0.shape[0], seed)
    with torch.no_grad():
        for name, tensor in (("weight_hh_l0", q @ rnn.weight_hh_l0.double() @ q.T),
                             ("weight_ih_l0", q @ rnn.weight_ih_l0.double()),
                             ("bias_ih_l0", None), ("bias_hh_l0", None)):  # fmt: skip
            param = getattr(rnn, name, None)
            if param is None:
                continue
            param.copy_((q @ param.double() if tensor is None else tensor).to(param.dtype))
        other.readout.weight.copy_((other.readout.weight.double() @ q.T).to(other.readout.weight.dtype))
    return other


__all__ = ["fresh_copy", "gaussian", "orthogonal", "random_recurrent", "rotate", "scramble", "with_recurrent"]
