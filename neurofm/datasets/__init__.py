"""Datasets: registered descriptions of where recordings are and how they are labelled."""

from neurofm.datasets._base import Dataset, Event, Recording, RecordingRef, default_data_root

__all__ = ["Dataset", "Event", "Recording", "RecordingRef", "default_data_root", "get_dataset"]


def get_dataset(spec: str, root: str | None = None) -> Dataset:
    """Resolve ``NAME``, ``folder:PATH`` or ``bids:PATH`` to a dataset instance.

    ``root`` overrides a registered dataset's root (same layout).
    """
    from neurofm import registry

    if ":" in spec and spec.split(":", 1)[0] in ("folder", "bids"):
        kind, path = spec.split(":", 1)
        return registry.create("datasets", kind, root=root or path)
    return registry.create("datasets", spec, root=root)
