"""Print training throughput (faces/s) of every registered model: forward, backward and Adam
step on augmented batches, bf16 autocast on CPU (mixed precision on GPU).

    python benchmarks/train_throughput.py [--batch-size 128] [--steps 15] [--models fernet deep_cnn]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ferkit.data.augment import BatchAugment
from ferkit.models import create_model, list_models
from ferkit.preprocessing import Preprocessing


def throughput(name: str, batch_size: int, steps: int, device: str) -> float:
    model = create_model(name).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    augment, prep = BatchAugment(seed=0), Preprocessing()
    faces = torch.randint(0, 256, (batch_size, 48, 48), dtype=torch.uint8)
    labels = torch.randint(0, 8, (batch_size,), device=device)
    dtype = torch.bfloat16 if device == "cpu" else torch.float16
    elapsed = 0.0
    for step in range(steps + 3):  # 3 warm-up steps
        start = time.perf_counter()
        x = prep.normalize(augment(prep.to_unit(faces))).to(device)
        with torch.autocast(device, dtype=dtype):
            loss = F.cross_entropy(model(x).float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= 3:
            elapsed += time.perf_counter() - start
    return steps * batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--models", nargs="*", default=list_models())
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {device}, threads: {torch.get_num_threads()}, batch {args.batch_size}")
    for name in args.models:
        print(f"{name:<14}{throughput(name, args.batch_size, args.steps, device):>8.0f} faces/s")


if __name__ == "__main__":
    main()
