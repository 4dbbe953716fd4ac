"""Run by tests/test_distributed.py under ``torchrun`` (gloo, CPU) or as one process: a few Soft-IntroVAE steps
on the 2D model with a fixed global batch and seed, then rank 0 writes the logged losses and the parameters."""

import sys

import torch

from sivae_core import SoftIntroVAE, TrainConfig, Trainer, seeded
from sivae_core.data.toy2d import ToySampler
from sivae_core.models import ToyVAE
from sivae_core.training import init_distributed


def main(out: str, steps: int) -> None:
    torch.set_num_threads(1)
    shard = init_distributed(torch.device("cpu"))
    model = seeded(lambda: ToyVAE(hidden=32), 0)
    cfg = TrainConfig(iterations=steps, batch_size=64, vae_warmup=3, lr_milestones=(), log_every=1, progress=False,
                      seed=7)
    trainer = Trainer(model, SoftIntroVAE(0.2, 0.3, 0.9), ToySampler("8gaussians"), cfg, shard=shard).fit()
    if shard.is_main:
        torch.save({"history": trainer.history, "params": {k: v.clone() for k, v in model.state_dict().items()},
                    "world": shard.world}, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
