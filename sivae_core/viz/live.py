"""Interactive training of a 2D model: pick a dataset and betas, press start, watch it learn.

The widget trains in a background thread with the ordinary :class:`~sivae_core.training.Trainer` and
redraws samples and the ``exp(ELBO)`` density every ``redraw_every`` iterations, so the notebook stays
responsive. Without a live Jupyter front end (papermill, nbval, the rendered book) nothing is started:
the chapter shows a static figure from the same code instead (:func:`~sivae_core.viz.toy2d.plot_model`).
"""

from __future__ import annotations

import threading

import ipywidgets as widgets
import torch
from IPython.display import display
from matplotlib.figure import Figure

from ..data.toy2d import DATASETS, METRIC_SCALE, ToySampler, sample
from ..experiments.paper import PAPER_HPARAMS
from ..experiments.schedules import PAPER_2D, train_config
from ..experiments.toy2d import paper_objective
from ..metrics.histogram import density_grid
from ..models.base import seeded
from ..models.mlp import ToyVAE
from ..training.trainer import Trainer

__all__ = ["LiveTraining"]


class LiveTraining:
    """Controls (dataset, method, betas, iterations, start/stop) and a live samples + density plot."""

    def __init__(self, dataset: str = "8gaussians", method: str = "sivae", iterations: int = 3000,
                 batch_size: int = 256, redraw_every: int = 100, seed: int = 0):
        hp = PAPER_HPARAMS[dataset][method]
        style = {"description_width": "70px"}
        self.dataset = widgets.Dropdown(options=sorted(DATASETS), value=dataset, description="dataset", style=style)
        self.method = widgets.Dropdown(options=["vae", "introvae", "sivae"], value=method, description="method",
                                       style=style)
        self.beta_rec = widgets.FloatSlider(hp["beta_rec"], min=0.05, max=1.0, step=0.05, description="beta_rec",
                                            style=style)
        self.beta_kl = widgets.FloatSlider(hp["beta_kl"], min=0.05, max=1.0, step=0.05, description="beta_kl",
                                           style=style)
        self.beta_neg = widgets.FloatSlider(hp.get("beta_neg", 1.0), min=0.05, max=5.0, step=0.05,
                                            description="beta_neg", style=style)
        self.iterations = widgets.IntText(iterations, description="iterations", style=style)
        self.start = widgets.Button(description="start", button_style="success", icon="play")
        self.stop = widgets.Button(description="stop", button_style="danger", icon="stop")
        self.status = widgets.Label("press start")
        self.out = widgets.Output()
        self.start.on_click(lambda _: self.begin())
        self.stop.on_click(lambda _: self.halt())
        self.dataset.observe(self._load_paper_defaults, names="value")
        self.method.observe(self._load_paper_defaults, names="value")
        self.batch_size, self.redraw_every, self.seed = batch_size, redraw_every, seed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load_paper_defaults(self, _change: object) -> None:
        hp = PAPER_HPARAMS[self.dataset.value][self.method.value]
        self.beta_rec.value, self.beta_kl.value = hp["beta_rec"], hp["beta_kl"]
        self.beta_neg.value = hp.get("beta_neg", self.beta_neg.value)

    def widget(self) -> widgets.Widget:
        controls = widgets.VBox([self.dataset, self.method, self.beta_rec, self.beta_kl, self.beta_neg,
                                 self.iterations, widgets.HBox([self.start, self.stop]), self.status])
        return widgets.HBox([controls, self.out])

    def _ipython_display_(self) -> None:
        display(self.widget())

    def begin(self) -> None:
        """Start a fresh run with the current settings (stopping any run in progress)."""
        self.halt()
        self._stop.clear()
        self._thread = threading.Thread(target=self._train, daemon=True)
        self._thread.start()

    def halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _train(self) -> None:
        ds, method = self.dataset.value, self.method.value
        overrides = {"beta_rec": self.beta_rec.value, "beta_kl": self.beta_kl.value}
        if method != "vae":
            overrides["beta_neg"] = self.beta_neg.value
        objective = paper_objective(method, ds, **overrides)
        total = int(self.iterations.value)
        config = train_config(total, PAPER_2D, batch_size=self.batch_size, progress=False)
        model = seeded(ToyVAE, self.seed)
        trainer = Trainer(model, objective, ToySampler(ds), config)
        real = sample(ds, 1000, torch.Generator().manual_seed(self.seed))
        try:
            while trainer.iteration < total and not self._stop.is_set():
                trainer.step()
                if trainer.iteration % self.redraw_every == 0 or trainer.iteration == total:
                    self._draw(model, ds, real, trainer.iteration, total)
        except Exception as err:  # show the error (e.g. a NaN loss) in the widget instead of losing it
            self.status.value = f"stopped: {err}"
            return
        self.status.value = f"{'stopped' if self._stop.is_set() else 'done'} at iteration {trainer.iteration}"

    def _draw(self, model: ToyVAE, dataset: str, real: torch.Tensor, it: int, total: int) -> None:
        fig = Figure(figsize=(8, 4))
        a, b = fig.subplots(1, 2)
        lim = 2 * METRIC_SCALE[dataset]
        with torch.no_grad():
            fake = model.sample(1000)
        a.scatter(real[:, 0], real[:, 1], s=2, alpha=0.3, color="tab:blue", label="data")
        a.scatter(fake[:, 0], fake[:, 1], s=2, alpha=0.5, color="tab:green", label="samples")
        a.set_xlim(-lim, lim)
        a.set_ylim(-lim, lim)
        a.set_aspect("equal")
        a.legend(loc="upper right", markerscale=4)
        side, dens = density_grid(model, METRIC_SCALE[dataset], 120)
        b.pcolormesh(side, side, dens, cmap="jet", shading="auto")
        b.set_aspect("equal")
        b.set_title("exp(ELBO)")
        a.set_title(f"iteration {it}/{total}")
        with self.out:
            self.out.clear_output(wait=True)
            display(fig)
        self.status.value = f"iteration {it}/{total}"
