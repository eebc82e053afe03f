"""The structured wave-RNN kernel (wavezoo.core.circular) against a dense reference, gradients included."""

import pytest
import torch

from wavezoo.core.circular import POOL, BufferPool, Rings, circular_conv, wave_scan
from wavezoo.models.wave_rnn import cyclic_shifts

SHAPES = [  # (T, c, B, n, k, I, O): n < p and k = 1 included
    (5, 2, 3, 7, 3, 2, 3),
    (4, 1, 2, 5, 5, 1, 2),
    (3, 3, 2, 2, 3, 2, 1),
    (3, 2, 2, 1, 3, 1, 1),
    (3, 2, 2, 2, 7, 3, 2),
    (2, 2, 1, 4, 1, 1, 1),
]


def dense_reference(x, in_weight, in_bias, kernel, h0, out_weight, nonlinearity):
    """The same recurrence with the dense block-circulant W_hh, channel-major units."""
    c, batch, n = h0.shape
    steps, units = x.shape[0] // batch, c * n
    w_hh = torch.einsum("abk,kij->aibj", kernel, cyclic_shifts(n, kernel.shape[-1]).to(kernel)).reshape(units, units)
    act = torch.relu if nonlinearity == "relu" else torch.tanh
    h, ys, hs = h0.transpose(0, 1).reshape(batch, units), [], []
    for x_t in x.view(steps, batch, -1):
        h = act(x_t @ in_weight.reshape(units, -1).T + in_bias.reshape(-1) + h @ w_hh.T)
        ys.append(h @ out_weight.reshape(-1, units).T)
        hs.append(h.view(batch, c, n).transpose(0, 1))
    return torch.cat(ys), torch.stack(hs, dim=1)


def inputs(shape, seed=0):
    steps, c, batch, n, k, i, o = shape
    g = torch.Generator().manual_seed(seed)
    sizes = [(steps * batch, i), (c, n, i), (c, n), (c, c, k), (c, batch, n), (o, c, n)]
    return [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in sizes]


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("shape", SHAPES)
def test_scan_equals_the_dense_recurrence_and_passes_gradcheck(shape, nonlinearity):
    args = inputs(shape)
    y, states = wave_scan(*args, nonlinearity)
    y_ref, states_ref = dense_reference(*args, nonlinearity)
    assert (y - y_ref).abs().max() < 1e-12 and (states - states_ref).abs().max() < 1e-12
    assert torch.autograd.gradcheck(lambda *a: wave_scan(*a, nonlinearity), args)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_pooled_path_gives_the_same_gradients_and_reuses_its_buffers(nonlinearity):
    POOL.clear()
    args = inputs(SHAPES[0], seed=1)
    y_ref, _ = dense_reference(*args, nonlinearity)
    expected = torch.autograd.grad(y_ref.square().sum(), args)
    pointers = []
    for _ in range(3):
        y, states = wave_scan(*args, nonlinearity, pooled=True)
        assert states is None
        got = torch.autograd.grad(y.square().sum(), args)
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(got, expected, strict=True))
        pointers.append(sorted(b.data_ptr() for free in POOL.free.values() for b, _ in free))
    assert len(pointers[0]) == 2 and pointers[0] == pointers[1] == pointers[2]  # the same two buffers every step


def test_pooled_graph_refuses_a_second_backward():
    args = inputs(SHAPES[0])
    y, _ = wave_scan(*args, "relu", pooled=True)
    loss = y.sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="back-propagated once"):
        loss.backward()


def test_pool_keeps_only_the_latest_shape():
    pool = BufferPool()
    pool.give(torch.empty(4, 5))
    pool.give(torch.empty(4, 5))
    pool.give(torch.empty(4, 5))  # beyond per_shape: dropped
    assert [len(v) for v in pool.free.values()] == [2]
    given = torch.empty(3, 3)
    pool.give(given)
    assert list(pool.free) == [((3, 3), torch.float32, torch.device("cpu"))]
    taken, views = pool.take((3, 3), torch.empty(0))
    assert taken is given and views is None and not pool.free[((3, 3), torch.float32, torch.device("cpu"))]
    fresh, _ = pool.take((3, 3), torch.empty(0))
    assert fresh is not given and fresh.shape == (3, 3)


@pytest.mark.parametrize(("cells", "kernel_size"), [(5, 3), (1, 3), (2, 7), (4, 1)])
def test_single_step_convolution_equals_the_dense_matrix(cells, kernel_size):
    torch.manual_seed(0)
    kernel = torch.randn(3, 3, kernel_size, dtype=torch.float64)
    h = torch.randn(3, 2, cells, dtype=torch.float64)
    w_hh = torch.einsum("abk,kij->aibj", kernel, cyclic_shifts(cells, kernel_size).double()).reshape(3 * cells, -1)
    expected = (h.transpose(0, 1).reshape(2, -1) @ w_hh.T).view(2, 3, cells).transpose(0, 1)
    assert torch.allclose(circular_conv(h, kernel), expected, atol=1e-12)


def test_rings_wrap_more_than_once_when_the_ring_is_shorter_than_the_padding():
    rings = Rings(cells=2, kernel_size=7)  # p = 3 > n = 2
    padded = torch.zeros(rings.width)
    rings.interior(padded).copy_(torch.tensor([10.0, 11.0]))
    assert rings.wrap_(padded).tolist() == [11.0, 10.0, 11.0, 10.0, 11.0, 10.0, 11.0, 10.0]


def test_pooled_buffers_of_the_same_shape_but_another_geometry_get_their_own_views():
    """n = 6, k = 3 and n = 4, k = 5 both pad to width 8: the pooled buffer is shared, its step views are not."""
    POOL.clear()
    for shape in [(3, 2, 2, 6, 3, 1, 2), (3, 2, 2, 4, 5, 1, 2), (3, 2, 2, 6, 3, 1, 2)]:
        args = inputs(shape, seed=2)
        y, _ = wave_scan(*args, "relu", pooled=True)
        expected = torch.autograd.grad(dense_reference(*args, "relu")[0].square().sum(), args)
        got = torch.autograd.grad(y.square().sum(), args)
        assert (y - dense_reference(*args, "relu")[0]).abs().max() < 1e-12
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(got, expected, strict=True))
    assert sum(len(free) for free in POOL.free.values()) == 2  # still only the two buffers of that shape
