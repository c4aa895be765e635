"""PyTorch reference for `dsch bench nn`: the same encoder on the CPU.

`--architecture dsch` (default) is the encoder dsch trains by default: widths 16/32/64, the whole 8x8
last feature map flattened into the head, a batch normalisation on the code. `--architecture
global-pool` is the encoder the benchmark was first measured with: widths 32/64/128, global average
pooling, no code batch normalisation.

Times the same work as the Swift benchmark: a training step over two views of a batch (forward,
backward of loss = sum(h * g) for a fixed random g, AdamW step), batched inference and single-image
inference, all in images per second (median of several runs). Prints one JSON object.
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


def encoder(bits, widths, hidden, channels, size, head_grid, code_batch_norm):
    c1, c2, c3 = widths
    side = size // 4
    grid = min(head_grid, side)

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    if grid == 1:
        pooling = [nn.AdaptiveAvgPool2d(1)]
    elif grid < side:
        pooling = [nn.MaxPool2d(side // grid)]
    else:
        pooling = []
    code = [nn.BatchNorm1d(bits)] if code_batch_norm else []
    return nn.Sequential(
        *block(channels, c1), *block(c1, c1), nn.MaxPool2d(2),
        *block(c1, c2), *block(c2, c2), nn.MaxPool2d(2),
        *block(c2, c3), *pooling, nn.Flatten(),
        nn.Linear(c3 * grid * grid, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, bits), *code, nn.Tanh())


ARCHITECTURES = {
    "dsch": dict(widths=(16, 32, 64), hidden=256, head_grid=8, code_batch_norm=True),
    "global-pool": dict(widths=(32, 64, 128), hidden=256, head_grid=1, code_batch_norm=False),
}


def median_rate(images, runs, work):
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="dsch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128, help="images per view; a step sees two views")
    parser.add_argument("--bits", type=int, default=128, help="network outputs (DSCH projects its codes from 128 by default)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--single", type=int, default=100, help="images per single-image run")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = encoder(args.bits, channels=3, size=args.size, **ARCHITECTURES[args.architecture])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    step_batch = 2 * args.batch
    images = torch.randn(step_batch, 3, args.size, args.size)
    gradient = torch.randn(step_batch, args.bits)

    def train_step():
        optimizer.zero_grad(set_to_none=False)
        output = model(images)
        (output * gradient).sum().backward()
        optimizer.step()

    model.train()
    for _ in range(2):
        train_step()
    train = median_rate(step_batch, args.runs, train_step)

    model.eval()
    with torch.no_grad():
        def batched():
            model(images)

        def single():
            for index in range(args.single):
                model(images[index % step_batch:index % step_batch + 1])

        batched()
        single()
        inference = median_rate(step_batch, args.runs, batched)
        one = median_rate(args.single, args.runs, single)

    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "train_images_per_second": train, "batch_inference_images_per_second": inference,
        "single_inference_images_per_second": one,
    }))


if __name__ == "__main__":
    main()
