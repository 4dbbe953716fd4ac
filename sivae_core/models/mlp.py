"""The fully connected networks of the 2D experiments (Daniel & Tamar 2021, Sec. 9.2.1).

The paper calls it "a simple 3-layer fully-connected network with 256 hidden units"; the authors'
code (``n_layers=3``) builds Linear(in, 256), three Linear(256, 256), then the output layer, with a
ReLU after every layer but the last. Table 2 depends on that exact depth, so ``n_hidden_layers``
counts the 256 -> 256 layers.
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import IntroVAEModel, make_prior

__all__ = ["make_mlp", "ToyVAE", "Discriminator"]


def make_mlp(in_dim: int, out_dim: int, hidden: int = 256, n_hidden_layers: int = 3) -> nn.Sequential:
    """Linear(in, h) -> ReLU -> [Linear(h, h) -> ReLU] * n_hidden_layers -> Linear(h, out)."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.ReLU()]
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    layers.append(nn.Linear(hidden, out_dim))
    return nn.Sequential(*layers)


class ToyVAE(IntroVAEModel):
    """The 2D model: MLP encoder to (mu, logvar) in R^z_dim, MLP decoder back to R^x_dim; N(0, I) prior, or
    with ``flow_layers`` > 0 the decoupled prior of the dpVAE chapter (:func:`~sivae_core.models.base.make_prior`)."""

    def __init__(self, x_dim: int = 2, z_dim: int = 2, hidden: int = 256, n_hidden_layers: int = 3,
                 flow_layers: int = 0, flow_hidden: int = 64):
        super().__init__(
            encoder=make_mlp(x_dim, 2 * z_dim, hidden, n_hidden_layers),
            decoder=make_mlp(z_dim, x_dim, hidden, n_hidden_layers),
            data_shape=(x_dim,),
            z_dim=z_dim,
            prior=make_prior(z_dim, flow_layers, flow_hidden),
        )


class Discriminator(nn.Module):
    """FactorVAE's discriminator (Kim & Mnih 2018): an MLP on codes, one logit for "joint" vs "permuted"."""

    def __init__(self, z_dim: int, hidden: int = 256, n_hidden: int = 3):
        super().__init__()
        self.net = make_mlp(z_dim, 1, hidden, n_hidden - 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)
