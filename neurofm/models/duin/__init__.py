"""Du-IN-style codebook-guided masked models for intracranial (sEEG/ECoG) recordings.

``model`` holds the networks (VQ-VAE, masked code model, classifier), ``layers`` and ``quantizer`` their
parts, ``regions`` derives contact groupings from data. Their data module (time/recording splits, several
stores) is :mod:`neurofm.data.duin`; their LightningModules are :mod:`neurofm.training.duin`.
Nothing heavy is imported here.
"""
