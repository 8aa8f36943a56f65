"""Where the time of one training epoch goes, per model: augmentation, camera degradations, the
training step (forward + backward + SGD) in fp32 and bf16 autocast, channels-last or not, and
the validation forward pass; then the FER+ epoch those rates add up to.

    python benchmarks/train_throughput.py [--batch-size 256] [--steps 8] [--models preresnet fernet]

Prints the CPU flags that decide the precision (`ferkit train --precision auto` takes bf16 only
where the CPU has AVX512-BF16 or AMX) and the thread count torch uses.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ferkit.data.augment import AugmentConfig, BatchAugment
from ferkit.models import create_model, list_models
from ferkit.preprocessing import Preprocessing
from ferkit.training.fit import cpu_has_fast_bf16

FERPLUS_TRAIN_FACES = 25_045  # majority protocol; the soft-label protocol keeps about the same
FERPLUS_VALID_FACES = 3_191


def _seconds(work: Callable[[], object], steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        work()
    start = time.perf_counter()
    for _ in range(steps):
        work()
    return (time.perf_counter() - start) / steps


def augmentation_ms(batch_size: int, steps: int) -> dict[str, float]:
    prep = Preprocessing()
    faces = prep.to_unit(torch.randint(0, 256, (batch_size, 48, 48), dtype=torch.uint8))
    out = {}
    for name, config in (("geometric", AugmentConfig()), ("geometric + degrade 0.75", AugmentConfig(scale=0.25, degrade=0.75))):
        augment = BatchAugment(config, seed=0)
        out[name] = _seconds(lambda: augment(faces), steps) * 1000
    return out


def step_rate(name: str, batch_size: int, steps: int, bf16: bool, channels_last: bool) -> float:
    model = create_model(name).train()
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(batch_size, 1, 48, 48).contiguous(memory_format=memory)
    labels = torch.randint(0, 8, (batch_size,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return batch_size / _seconds(step, steps)


def eval_rate(name: str, steps: int, bf16: bool) -> float:
    model = create_model(name).eval().to(memory_format=torch.channels_last)
    x = torch.randn(512, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return 512 / _seconds(lambda: model(x), max(1, steps // 2), warmup=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--models", nargs="*", default=list_models())
    args = parser.parse_args()
    bf16_fast = cpu_has_fast_bf16()
    print(f"threads {torch.get_num_threads()}, avx512_bf16/amx: {bf16_fast}, batch {args.batch_size}")
    for name, ms in augmentation_ms(args.batch_size, args.steps).items():
        print(f"augmentation {name:<26}{ms:>8.1f} ms/batch")
    print(f"{'model':<14}{'fp32':>8}{'fp32 NCHW':>11}{'bf16':>8}{'eval bf16':>11}  faces/s; FER+ epoch (bf16 if fast, else fp32)")
    for name in args.models:
        fp32 = step_rate(name, args.batch_size, args.steps, bf16=False, channels_last=True)
        nchw = step_rate(name, args.batch_size, args.steps, bf16=False, channels_last=False)
        bf16 = step_rate(name, args.batch_size, args.steps, bf16=True, channels_last=True)
        evaluation = eval_rate(name, args.steps, bf16=bf16_fast)
        train = bf16 if bf16_fast else fp32
        minutes = (FERPLUS_TRAIN_FACES / train + FERPLUS_VALID_FACES / evaluation) / 60
        print(f"{name:<14}{fp32:>8.0f}{nchw:>11.0f}{bf16:>8.0f}{evaluation:>11.0f}  {minutes:5.1f} min")


if __name__ == "__main__":
    main()
