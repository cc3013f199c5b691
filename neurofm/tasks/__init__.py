"""Decoding tasks: dataset + labels + window + split protocol + metric (``neurofm list tasks``)."""

from neurofm.tasks.spec import TaskSpec, get_task, load_task_file, parse_task

__all__ = ["TaskSpec", "get_task", "load_task_file", "load_task", "parse_task"]


def load_task(task, **kwargs):
    """Prepare the task's store (cached) and read its windows; see :func:`neurofm.tasks.data.load_task`."""
    from neurofm.tasks.data import load_task as _load

    return _load(task, **kwargs)
