"""A store belongs to one dataset + root + recipe (issue 13): claim_store decides before anything is written."""

from __future__ import annotations

import json

import pytest

from neurofm._errors import StoreError
from neurofm.data.store import claim_store, store_identity


def _identity(root="/data/a", recipe_hash="h1"):
    return store_identity({"name": "folder", "root": root}, recipe_hash, "eeg-200hz")


def _store(path, identity_root="/data/a", recipe_hash="h1"):
    (path / "shards").mkdir(parents=True)
    (path / "shards" / "r.npy").write_bytes(b"x")
    (path / "recipe.json").write_text(json.dumps(dict(recipe={"name": "eeg-200hz"}, recipe_hash=recipe_hash,
                                                      dataset={"name": "folder", "root": identity_root})))
    return path


def test_new_resume_and_a_run_killed_while_writing_recipe_json(tmp_path):
    assert claim_store(tmp_path / "absent", _identity()) == "new"
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / ".recipe.json.x1.tmp").write_text("{")     # what a kill during the first write leaves
    (tmp_path / "killed" / "shards").mkdir()
    assert claim_store(tmp_path / "killed", _identity()) == "new"
    assert claim_store(_store(tmp_path / "s"), _identity()) == "resume"


def test_force_rebuilds_only_the_store_files(tmp_path):
    store = _store(tmp_path / "s", recipe_hash="old")
    with pytest.raises(StoreError, match="made with recipe 'eeg-200hz' \\(hash old\\).*HINT: .*--force"):
        claim_store(store, _identity())
    assert (store / "shards" / "r.npy").exists()
    assert claim_store(store, _identity(), force=True) == "rebuild"
    assert not (store / "shards").exists() and not (store / "recipe.json").exists()


def test_unreadable_recipe_json_is_not_taken_for_a_store(tmp_path):
    (tmp_path / "recipe.json").write_text("[1, 2]")
    with pytest.raises(StoreError, match="recipe.json is not a neurofm store record"):
        claim_store(tmp_path, _identity(), force=True)
    assert (tmp_path / "recipe.json").read_text() == "[1, 2]"
