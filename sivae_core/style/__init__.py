"""The style-based Soft-IntroVAE's entry points: ``python -m sivae_core.style`` trains (progressive growing, one
process or ``torchrun``), ``python -m sivae_core.style.prepare`` prepares a folder of faces.

The model lives in :mod:`sivae_core.models.style`, the progressive schedule in :mod:`sivae_core.training.progressive`,
the face data in :mod:`sivae_core.data.faces` and :mod:`sivae_core.data.face_sampler`, the training in
:mod:`sivae_core.experiments.style`; this package only holds the command-line forms.
"""
