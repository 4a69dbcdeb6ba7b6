"""A tiny real training script for the example sweep (pure Python, about a second per run).

Fits y = 3x - 2 with (momentum) SGD on noisy synthetic data, then writes metrics.json into the
task folder and prints the final metrics as one JSON line.
"""

import argparse
import json
import random
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--optimizer", choices=["sgd", "momentum"], default="sgd")
    parser.add_argument("--model.depth", dest="depth", type=int, default=1)
    parser.add_argument("--model.width", dest="width", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output.dir", dest="output_dir", default=".")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    data = [(x, 3 * x - 2 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(200))]
    w = b = vw = vb = 0.0
    beta = 0.9 if args.optimizer == "momentum" else 0.0
    started = time.time()
    for epoch in range(args.epochs):
        for x, y in data:
            err = (w * x + b) - y
            vw = beta * vw + err * x
            vb = beta * vb + err
            w -= args.lr * vw
            b -= args.lr * vb
        # Stand-in for a bigger model: deeper/wider models take a little longer per epoch.
        time.sleep(0.02 * (1 + args.depth * args.width / 256))
        if epoch % 10 == 0:
            print(f"epoch {epoch} w={w:.4f} b={b:.4f}", flush=True)
    loss = sum(((w * x + b) - y) ** 2 for x, y in data) / len(data)
    metrics = {"loss": loss, "w": w, "b": b, "train_seconds": round(time.time() - started, 3)}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
