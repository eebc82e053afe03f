"""Reference: the paper's variable-binding protocol as a plain PyTorch loop (no Lightning).

    python -m benchmarks.plain_loop --task T1 --steps 3000 [--threshold 0.9]

Same model (Elman tanh, no biases), data generator, loss (masked MSE), optimiser (Adam 1e-3), clipping (1.0),
batch (64) and curriculum (10/20/40/60/100, threshold 0.98 unless ``--threshold``) as
``configs/variable_binding/elman.yaml``; prints steps/s and the test sign accuracy
at horizon 200. ``wavezoo fit`` is benchmarked against this loop.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from wavezoo import create_model
from wavezoo.data import VariableBindingDataModule


def evaluate(model, data: VariableBindingDataModule) -> float:
    correct = total = 0
    with torch.no_grad():
        for x, y, mask in data.eval_set("test"):
            out = model(x)
            correct += ((out[mask] > 0) == (y[mask] > 0)).sum().item()
            total += y[mask].numel()
    return correct / total


def train(
    task: str, steps: int, hidden: int = 128, seed: int = 0, log_every: int = 500, threshold: float = 0.98
) -> dict[str, float]:
    torch.manual_seed(seed)
    data = VariableBindingDataModule(task, seed=seed, curriculum_threshold=threshold)
    model = create_model("elman", input_size=8, output_size=8, hidden_size=hidden)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        x, y, mask = data.next_train_batch()
        out = model(x)
        loss = F.mse_loss(out[mask], y[mask])
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        data.report_train_accuracy(float(((out[mask] > 0) == (y[mask] > 0)).float().mean()))
        if step % log_every == 0:
            print(f"step {step}: horizon {data.horizon} loss {loss.item():.4f} test acc {evaluate(model, data):.4f}")
    elapsed = time.perf_counter() - start
    return {"steps_per_s": steps / elapsed, "test_acc": evaluate(model, data), "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="T1")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.98, help="curriculum threshold (authors: 0.9 or 0.98)")
    args = parser.parse_args()
    result = train(args.task, args.steps, args.hidden, args.seed, threshold=args.threshold)
    print(
        f"plain loop: {result['steps_per_s']:.1f} steps/s, test acc {result['test_acc']:.4f} "
        f"in {result['seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
