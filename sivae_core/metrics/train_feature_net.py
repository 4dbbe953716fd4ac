"""Train the offline FID feature network once and write ``sivae_core/assets/feature_net_mnist.pt``
(the ``feature-net`` command)::

    python -m sivae_core feature-net --epochs 2 --seed 0

A 20-way classifier on MNIST (classes 0-9) and Fashion-MNIST (classes 10-19) training sets together;
prints the test accuracy. Deterministic on CPU for a fixed thread count.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from ..cli import run_command
from ..data import load_dataset
from .frechet import FEATURE_NET_PATH, FeatureNet

#: The command writes the shipped network unless told otherwise.
OUT_REQUIRED = False


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)


def run(args: argparse.Namespace) -> int:
    args.out = args.out or str(FEATURE_NET_PATH)
    torch.manual_seed(args.seed)
    tr = [load_dataset("mnist", "train"), load_dataset("fmnist", "train")]
    te = [load_dataset("mnist", "test"), load_dataset("fmnist", "test")]
    x = torch.cat([d.images for d in tr]).float() / 255
    y = torch.cat([tr[0].labels, tr[1].labels + 10])
    xt = torch.cat([d.images for d in te]).float() / 255
    yt = torch.cat([te[0].labels, te[1].labels + 10])
    net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = F.cross_entropy(net.logits(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = float((net.logits(xt).argmax(1) == yt).float().mean())
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {acc:.4f}")
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command("feature-net"))
