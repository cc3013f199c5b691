"""TSMNet (Kobler et al. 2022, "SPD domain-specific batch normalization to crack interpretable unsupervised
domain adaptation in EEG") from spd-learn, under braindecode's model contract.

The network is the neural counterpart of tangent space + LR with per-subject re-centring: ShallowConvNet's
temporal and spatial convolutions, a covariance of the filtered signals, a BiMap/ReEig (SPDNet) layer, an SPD
batch normalisation (Riemannian re-centring and dispersion), the matrix logarithm (tangent space) and a linear
classifier. Trained with ``--align subject --adapt adabn``, every training batch holds one subject, so the SPD
batch normalisation re-centres each subject on its own Fréchet mean, and at test time the mean of a new subject
is computed from its own unlabelled windows (the domain-specific batch normalisation of the paper), exactly as
:func:`neurofm.decoding.align.recenter` does for the classical model. :mod:`neurofm.decoding.adapt` treats
spd-learn's SPD batch normalisation layers like torch's BatchNorm.

The layers are spd-learn's own (``spd_learn.models.TSMNet``); this module only maps braindecode's constructor
arguments (``n_chans``, ``n_outputs``, ``n_times``, ``sfreq``) onto it.
"""

from __future__ import annotations

import torch

from neurofm._errors import ConfigError


def _spd_learn():
    try:
        import spd_learn.models
    except ImportError:  # pragma: no cover - a dependency of the project
        raise ConfigError("model 'tsmnet' needs the spd-learn package.",
                          hint="pip install spd-learn (a dependency of neurofm: reinstall with pip install -e .).") from None
    return spd_learn.models


class TSMNet(torch.nn.Module):
    """spd-learn's TSMNet with braindecode's signature.

    Parameters
    ----------
    n_chans, n_outputs : int
        Input channels and classes.
    n_times, sfreq : int, float | None
        braindecode's signal description; TSMNet's covariance pooling takes windows of any length.
    n_temp_filters, temp_kernel_length, n_spatiotemp_filters, n_bimap_filters :
        spd-learn's TSMNet arguments (temporal filters and their length in samples, spatial filters after the
        temporal ones, size of the SPD matrices after BiMap).
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int | None = None, sfreq: float | None = None,
                 n_temp_filters: int = 4, temp_kernel_length: int = 25, n_spatiotemp_filters: int = 40,
                 n_bimap_filters: int = 20):
        super().__init__()
        if n_bimap_filters > n_spatiotemp_filters:
            raise ConfigError(f"tsmnet: n_bimap_filters={n_bimap_filters} exceeds n_spatiotemp_filters="
                              f"{n_spatiotemp_filters} (BiMap reduces the SPD matrices).",
                              hint="pass n_bimap_filters <= n_spatiotemp_filters in --model-kwargs.")
        self.n_chans, self.n_outputs, self.n_times, self.sfreq = n_chans, n_outputs, n_times, sfreq
        self.model = _spd_learn().TSMNet(n_chans=n_chans, n_outputs=n_outputs, n_temp_filters=n_temp_filters,
                                         temp_kernel_length=temp_kernel_length,
                                         n_spatiotemp_filters=n_spatiotemp_filters, n_bimap_filters=n_bimap_filters)
        # spd-learn starts the dispersion buffer as a scalar but stores each training batch's as (1, 1): start it
        # at the trained shape, so saved weights load into a freshly built network
        bn = self.model.spdbnorm
        bn.running_var = bn.running_var.reshape(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float())
