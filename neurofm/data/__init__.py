"""The window store: writing (``store``) and reading (``dataset``, ``datamodule``)."""
