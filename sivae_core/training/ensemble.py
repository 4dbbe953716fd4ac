"""Many independent runs trained as one batched model.

Table 2 of the paper is 4 datasets x 3 methods x 5 seeds; Fig. 3 sweeps IntroVAE's margin ``m``. Each
run is a tiny MLP, so running them one after another wastes the hardware. :class:`Ensemble` stacks the
parameters of ``R`` models along a new leading axis and evaluates the *unchanged* objective code of
:mod:`sivae_core.objectives` for all runs at once with :func:`torch.func.vmap`. Because each run keeps
its own parameters, its own Adam state (Adam is element-wise) and its own random generator, run ``r``
of an ensemble follows the same trajectory as the sequential run with the same seed, up to float
round-off in the batched matrix products.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ..models.base import PLAYERS, IntroVAEModel
from ..objectives.base import Noise, Objective, StepOutput

__all__ = ["Ensemble"]


class _ObjectiveCall(nn.Module):
    """Adapter so :func:`functional_call` can run an objective's loss with swapped-in parameters."""

    def __init__(self, model: IntroVAEModel):
        super().__init__()
        self.model = model

    def forward(self, objective: Objective, part: str, x: Tensor, eps: Tensor, hp: Mapping[str, Tensor],
                carry: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        noise = Noise(eps)
        if part == "encoder":
            out = objective.encoder_loss(self.model, x, noise, hp)
        else:
            out = objective.decoder_loss(self.model, x, noise, hp, carry)
        return out.loss, out.terms, out.carry


class Ensemble(nn.Module):
    """``R`` models of identical architecture, parameters stacked along dimension 0.

    Build it from models initialised as the sequential runs would be (see
    :func:`sivae_core.models.base.seeded`), so that run ``r`` starts from the same weights.
    """

    def __init__(self, models: Sequence[IntroVAEModel]):
        super().__init__()
        if len(models) == 0:
            raise ValueError("Ensemble needs at least one model")
        shapes = {tuple((n, tuple(p.shape)) for n, p in m.named_parameters()) for m in models}
        if len(shapes) != 1:
            raise ValueError("all models of an Ensemble must have the same architecture")
        params, _ = stack_module_state(list(models))
        self.n_runs = len(models)
        self._names = list(params.keys())
        for name, p in params.items():
            self.register_parameter(name.replace(".", "__"), nn.Parameter(p.detach().clone()))
        self._call = _ObjectiveCall(copy.deepcopy(models[0]))
        self.template = self._call.model
        self.data_shape = self.template.data_shape
        self.z_dim = self.template.z_dim
        self.event_dims = self.template.event_dims
        self.input_dim = self.template.input_dim

    def stacked(self) -> dict[str, Tensor]:
        """The stacked parameters, keyed by the single model's parameter names."""
        return {name: getattr(self, name.replace(".", "__")) for name in self._names}

    def player_parameters(self, player: str) -> list[nn.Parameter]:
        """Stacked parameters of the ``player``'s sub-modules (see :data:`~sivae_core.models.base.PLAYERS`)."""
        return [p for name, p in self.stacked().items() if name.split(".")[0] in PLAYERS[player]]

    def run_model(self, r: int) -> IntroVAEModel:
        """An independent copy of run ``r`` as an ordinary model (for metrics and plots)."""
        model = copy.deepcopy(self.template)
        state = {name: p[r].detach().clone() for name, p in self.stacked().items()}
        model.load_state_dict(state)
        return model

    def losses(self, objective: Objective, part: str, x: Tensor, eps: Tensor, hp: Mapping[str, Tensor],
               carry: Mapping[str, Tensor] | None = None) -> StepOutput:
        """Evaluate ``objective``'s ``part`` loss for every run; outputs have a leading run axis."""
        params = {"model." + k: v for k, v in self.stacked().items()}

        def one_run(p: dict[str, Tensor], x_r: Tensor, eps_r: Tensor, hp_r: dict[str, Tensor],
                    carry_r: dict[str, Tensor]) -> Any:
            return functional_call(self._call, p, (objective, part, x_r, eps_r, hp_r, carry_r))

        loss, terms, out_carry = vmap(one_run, randomness="error")(params, x, eps, dict(hp), dict(carry or {}))
        return StepOutput(loss, terms, out_carry)
