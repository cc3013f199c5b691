"""Du-IN-style codebook-guided masked models for intracranial (sEEG/ECoG) recordings.

``model`` holds the networks (VQ-VAE, masked code model, classifier), ``regions`` derives contact
groupings from data, ``data`` the time/recording-split data module, ``lightning`` the training modules.
Nothing heavy is imported here.
"""
