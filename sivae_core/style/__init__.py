"""The style-based Soft-IntroVAE's entry points (Part V): data preparation now, training to follow.

The model lives in :mod:`sivae_core.models.style`, the progressive schedule in :mod:`sivae_core.progressive`,
the face data in :mod:`sivae_core.data.faces` and :mod:`sivae_core.data.face_sampler`; this package only
holds the command-line forms.
"""
