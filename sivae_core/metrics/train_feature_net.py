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
from torch import Tensor

from ..cli import run_command
from ..data import load_dataset
from .frechet import FEATURE_NET_PATH, FeatureNet


def fit_feature_net(x: Tensor, y: Tensor, n_classes: int, epochs: int = 2, batch_size: int = 256, seed: int = 0,
                    device: str | torch.device = "cpu", x_test: Tensor | None = None,
                    y_test: Tensor | None = None) -> tuple[FeatureNet, float | None]:
    """Train a :class:`FeatureNet` on images ``x`` (floats in [0, 1]) with labels ``y``; returns it (eval mode) and
    its accuracy on ``(x_test, y_test)`` when given."""
    torch.manual_seed(seed)
    net = FeatureNet(n_classes, in_ch=x.shape[1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(net.logits(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    if x_test is None or y_test is None:
        return net, None
    with torch.no_grad():
        pred = torch.cat([net.logits(xb.to(device)).argmax(1).cpu() for xb in x_test.split(1000)])
    return net, float((pred == y_test.cpu()).float().mean())


#: The command writes the shipped network unless told otherwise.
OUT_REQUIRED = False


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)


def run(args: argparse.Namespace) -> int:
    args.out = args.out or str(FEATURE_NET_PATH)
    tr = [load_dataset("mnist", "train"), load_dataset("fmnist", "train")]
    te = [load_dataset("mnist", "test"), load_dataset("fmnist", "test")]
    x = torch.cat([d.images for d in tr]).float() / 255
    y = torch.cat([tr[0].labels, tr[1].labels + 10])
    xt = torch.cat([d.images for d in te]).float() / 255
    yt = torch.cat([te[0].labels, te[1].labels + 10])
    net, acc = fit_feature_net(x, y, 20, args.epochs, args.batch_size, args.seed, x_test=xt, y_test=yt)
    print(f"test accuracy {acc:.4f}")
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command("feature-net"))
