"""Figures: 2D samples and densities, the live training widget, image grids, interpolations, latent-space
pictures and OOD histograms. Import the module you need (``sivae_core.viz.toy2d``, ...): the widget needs
ipywidgets, the rest only matplotlib."""
