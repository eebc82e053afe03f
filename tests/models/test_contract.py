"""Every registered model obeys the zoo contract."""

import pytest
import torch

import wavezoo
from wavezoo import ConfigError


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_shape_contract(name):
    model = wavezoo.create_model(name, input_size=3, output_size=5, hidden_size=48)
    assert isinstance(model, torch.nn.Module)
    y = model(torch.randn(4, 7, 3))
    assert y.shape == (4, 7, 5)
    assert model.hidden_size == 48


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_outputs_are_causal(name):
    torch.manual_seed(0)
    model = wavezoo.create_model(name, input_size=2, output_size=2, hidden_size=48).eval()
    x = torch.randn(2, 9, 2)
    changed = x.clone()
    changed[:, 5:] += 1.0
    assert torch.allclose(model(x)[:, :5], model(changed)[:, :5], atol=1e-6)
    assert not torch.allclose(model(x)[:, 5:], model(changed)[:, 5:])


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_wrong_rank_or_width_is_a_clear_error(name):
    model = wavezoo.create_model(name, input_size=3, output_size=1, hidden_size=48)
    with pytest.raises(ConfigError, match=r"got input of shape \(4, 3\); expected a 3-d tensor"):
        model(torch.randn(4, 3))
    with pytest.raises(ConfigError, match=r"input_size=3"):
        model(torch.randn(2, 5, 4))


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_every_family_reads_token_ids_with_a_vocabulary(name, tmp_path):
    """``vocab_size``: the model embeds token ids itself (its state dict holds the embedding), so streaming,
    save_pretrained / from_pretrained and create_model's record all keep working with ids."""
    torch.manual_seed(0)
    model = wavezoo.create_model(name, input_size=11, output_size=5, hidden_size=48, vocab_size=11, embedding_dim=6)
    model.eval()
    assert model.input_size == 6 and tuple(model.token_embedding.weight.shape) == (11, 6)
    assert model.wavezoo_config["sizes"] == {"input_size": 6, "output_size": 5, "hidden_size": 48, "vocab_size": 11,
                                             "embedding_dim": 6}  # fmt: skip
    ids = torch.randint(0, 11, (3, 7))
    y = model(ids)
    assert y.shape == (3, 7, 5)
    state, steps = model.initial_state(3), []
    with torch.no_grad():
        for t in range(7):
            y_t, state = model.step(ids[:, t], state)
            steps.append(y_t)
    assert torch.allclose(torch.stack(steps, 1), y, atol=1e-5)
    model.save_pretrained(tmp_path)
    assert torch.equal(wavezoo.from_pretrained(tmp_path)(ids), y)
    with pytest.raises(ConfigError, match=r"token ids must lie in 0..10 \(vocab_size=11\); got ids from 0 to 11"):
        model(torch.tensor([[0, 11]]))
    with pytest.raises(ConfigError, match=r"got token ids of shape \(3, 7, 1\); expected a 2-d tensor"):
        model(ids[..., None])
    with pytest.raises(ConfigError, match=r"has vocab_size=11 and expects integer token ids, got torch.float32"):
        model(torch.randn(3, 7, 6))


def test_paper_elman_has_no_biases():
    model = wavezoo.create_model("elman", input_size=8, output_size=8, hidden_size=128)
    names = {n for n, _ in model.named_parameters()}
    assert names == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "readout.weight"}
    assert sum(p.numel() for p in model.parameters()) == 128 * 8 + 128 * 128 + 8 * 128
    assert torch.equal(model(torch.zeros(1, 4, 8)), torch.zeros(1, 4, 8))  # h(0) = 0, no bias


def test_elman_is_the_paper_equation():
    model = wavezoo.create_model("elman", input_size=2, output_size=3, hidden_size=4).double()
    x = torch.randn(1, 6, 2, dtype=torch.float64)
    w_hh, w_uh, w_r = model.rnn.weight_hh_l0, model.rnn.weight_ih_l0, model.readout.weight
    h, outs = torch.zeros(4, dtype=torch.float64), []
    for t in range(6):
        h = torch.tanh(w_hh @ h + w_uh @ x[0, t])
        outs.append(w_r @ h)
    assert torch.allclose(model(x)[0], torch.stack(outs))


def test_registry_errors_list_the_choices(monkeypatch):
    with pytest.raises(ConfigError, match="unknown model 'resnet'; registered models: ") as err:
        wavezoo.create_model("resnet", input_size=1, output_size=1)
    assert all(name in str(err.value) for name in wavezoo.list_models())
    with pytest.raises(ConfigError, match="hidden_size=0 is invalid"):
        wavezoo.create_model("lstm", input_size=1, output_size=1, hidden_size=0)
    with pytest.raises(ConfigError, match="unexpected keyword argument 'depth'"):
        wavezoo.create_model("gru", input_size=1, output_size=1, depth=3)
    with pytest.raises(ConfigError, match="num_heads=3 must divide hidden_size=16"):
        wavezoo.create_model("transformer", input_size=1, output_size=1, hidden_size=16, num_heads=3)
    monkeypatch.setattr(wavezoo.pretrained.weights, "TABLE", {})
    with pytest.raises(ConfigError, match="no published pretrained weights for model .irnn.; published .*: none"):
        wavezoo.create_model("irnn", input_size=1, output_size=1, pretrained=True)
    with pytest.raises(ConfigError, match="create_model\\('gru'\\) needs input_size and output_size"):
        wavezoo.create_model("gru")


def test_list_models_filters():
    assert wavezoo.list_models("*ru*") == ["gru"]
    expected = {"elman", "gru", "lstm", "irnn", "transformer", "twm_lbc", "twm_sbc", "sbc_transformer", "wave_rnn"}
    assert expected <= set(wavezoo.list_models())


# -- timm-style contract over list_models(): defaults, sizes, gradients, memory on dense inputs, streaming ---------

HIDDEN_SIZES = (32, 64, 128, 256, 512, 1024)


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_builds_with_its_own_defaults(name):
    """Only input/output sizes given: the family's defaults work, and hidden_size reports what was built."""
    model = wavezoo.create_model(name, input_size=8, output_size=8)
    assert model(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    assert model.wavezoo_config["sizes"]["hidden_size"] == model.hidden_size


@pytest.mark.parametrize("hidden_size", HIDDEN_SIZES)
@pytest.mark.parametrize("name", wavezoo.list_models())
def test_accepts_the_usual_hidden_sizes(name, hidden_size):
    with torch.device("meta"):  # shapes only: 1024 units of every family in no time
        model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=hidden_size)
    assert model.hidden_size == hidden_size


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_every_parameter_learns_and_the_output_remembers_dense_inputs(name):
    """On DENSE random inputs (every step an input, as in any real benchmark): every parameter gets a gradient, and
    the output at the last step depends on each of the inputs 1..5 steps back."""
    torch.manual_seed(0)
    model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=64)
    x = torch.randn(4, 12, 3, requires_grad=True)
    y = model(x)
    (y[:, -1].sum() + 1e-3 * y.square().mean()).backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert silent == [], f"parameters without gradient: {silent}"
    reach = x.grad.abs().sum(dim=(0, 2))
    assert all(reach[-1 - lag] > 0 for lag in range(1, 6)), reach


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_step_by_step_equals_the_sequence_map(name):
    """initial_state / step over a sequence == model(x) to 1e-5 (float32), also when the stream is cut in two."""
    torch.manual_seed(1)
    model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=64).eval()
    x = torch.randn(3, 20, 3)
    with torch.no_grad():
        full = model(x)
        state = model.initial_state(3)
        outputs = []
        for t in range(20):
            y_t, state = model.step(x[:, t], state)
            outputs.append(y_t)
        first, carried = model.scan(x[:, :9])
        second, _ = model.scan(x[:, 9:], carried)
    assert torch.allclose(torch.stack(outputs, 1), full, atol=1e-5, rtol=1e-5)
    assert torch.allclose(torch.cat([first, second], 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_step_with_a_wrong_shape_is_a_clear_error(name):
    model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=64)
    with pytest.raises(ConfigError, match=r"step got x_t of shape \(4, 5\); expected \[batch, input_size=3\]"):
        model.step(torch.randn(4, 5), model.initial_state(4))


def _import_graph():
    """Every module of wavezoo -> the wavezoo modules it imports anywhere (module level or inside functions);
    ``from wavezoo.a import b`` counts as importing ``wavezoo.a.b`` when that is a module, else ``wavezoo.a``."""
    import ast
    from pathlib import Path

    root = Path(wavezoo.__file__).parent
    files = {}
    for path in root.rglob("*.py"):
        parts = ["wavezoo", *path.relative_to(root).with_suffix("").parts]
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for module, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("wavezoo"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in files else node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("wavezoo"))
        graph[module] = {m for m in found if m in files and m != module}
    return graph


def test_the_package_has_no_import_cycle():
    """No cycle among wavezoo's modules, not even through imports inside functions (the brief: a hidden cycle is
    still a cycle); the registry imports nothing of the zoo but its errors, and models import no Lightning layer."""
    graph = _import_graph()
    assert graph["wavezoo.registry"] <= {"wavezoo.errors"}
    state = {}

    def visit(module, stack):
        if state.get(module) == "open":
            pytest.fail(f"import cycle: {' -> '.join([*stack[stack.index(module) :], module])}")
        if state.get(module) != "done":
            state[module] = "open"
            for dep in sorted(graph[module]):
                visit(dep, [*stack, module])
            state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    for module, deps in graph.items():
        if module.startswith("wavezoo.models"):
            assert not {d for d in deps if d.startswith(("wavezoo.lit", "wavezoo.pretrained"))}, module


def test_importing_the_models_imports_no_lightning():
    import subprocess
    import sys

    probe = "import sys, wavezoo.models; print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning'}), 'wavezoo.lit' in sys.modules)"  # noqa: E501
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["[]", "False"], done.stderr[-2000:]
