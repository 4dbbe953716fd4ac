"""Train the offline FID feature network once and write ``sivae_core/assets/feature_net_mnist.pt``.

    python -m sivae_core.metrics.train_feature_net --epochs 2 --seed 0

A 20-way classifier on MNIST (classes 0-9) and Fashion-MNIST (classes 10-19) training sets together;
prints the test accuracy. Deterministic on CPU for a fixed thread count.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from ..data import load_dataset
from .frechet import FEATURE_NET_PATH, FeatureNet


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", default=str(FEATURE_NET_PATH))
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    main()
