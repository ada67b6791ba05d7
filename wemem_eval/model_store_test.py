"""Architectures in cache keys and recipes: a zoo name keys the model store
exactly as before architectures could come from code or files; code is
keyed by itself; recipes and run configs stay JSON-reportable."""

import dataclasses
import json
import types

import numpy as np
import pytest

from wemem_eval import model_store
from wemem_eval import model_training
from wemem_eval import run as run_lib
from wemem_tf import io_utils
from wemem_tf.data import splits as splits_lib
from wemem_tf.defenses import wemem
from wemem_tf.models import architecture as arch_lib
from wemem_tf.models.testdata import user_models
from wemem_tf.training import loop as loop_lib

# pretrained_key(fingerprint "f" * 64, the split below, seed 3, each zoo
# name, TrainConfig(patience=5), the default then) as computed before `wemem_tf.models.architecture`
# existed: model stores written then must still be found.
PINNED = {"column_fc": "2ab21bfb4a13d8af", "small_cnn": "09f98a0238ca9762",
          "resnet18": "a92aaac4efd4a4d9", "vgg16_bn": "9d02032ba88f38e4"}
DATASET = types.SimpleNamespace(fingerprint="f" * 64)
SPLIT = splits_lib.ModelSplit(np.arange(10, dtype=np.int64),
                              np.arange(10, 15, dtype=np.int64),
                              np.arange(15, 20, dtype=np.int64))


def _key(architecture):
  return model_store.ModelStore.pretrained_key(DATASET, SPLIT, 3,
                                               architecture,
                                               loop_lib.TrainConfig(patience=5))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_zoo_keys_are_unchanged_in_every_form(name):
  assert _key(name) == PINNED[name]
  assert _key(arch_lib.ZOO[name]) == PINNED[name]
  assert _key(arch_lib.ZOO[name].build) == PINNED[name]


def test_code_is_keyed_by_itself_not_by_its_name():
  spec = "wemem_tf.models.testdata.user_models:small_mlp"
  # The same function, named by MODULE:FUNCTION or passed: the same key.
  assert _key(spec) == _key(user_models.small_mlp)
  keys = {_key(spec), _key(user_models.conv_net), _key("column_fc"),
          _key(arch_lib.Architecture("column_fc", user_models.small_mlp,
                                     "mine"))}
  assert len(keys) == 4


def test_recipes_report_a_name_for_every_form():
  zoo_recipe = model_training.ModelRecipe(architecture=arch_lib.ZOO["vgg16_bn"])
  assert zoo_recipe.architecture == "vgg16_bn"  # stored as the plain name
  recipe = model_training.ModelRecipe(architecture=user_models.conv_net)
  assert recipe.architecture_name == "conv_net"
  assert recipe.resolved_architecture.build is user_models.conv_net
  assert model_training.ModelRecipe().resolved_architecture.is_zoo
  resolved = arch_lib.resolve_architecture(user_models.conv_net)
  assert json.loads(json.dumps(resolved, default=io_utils.json_default)
                    ) == "conv_net"


def test_run_config_reports_code_by_name():
  config = run_lib.RunConfig(architecture=user_models.conv_net,
                             defenses=("none",), baselines=())
  assert config.to_json()["architecture"] == "conv_net"
  assert run_lib.RunConfig().to_json()["architecture"] is None


def test_tiered_store_writes_kept_kinds_and_holds_the_rest(tmp_path):
  disk = model_store.ModelStore(str(tmp_path), kinds=("pretrained",))
  tiered = model_store.TieredStore(disk)
  weights = [np.arange(3.0), np.ones((2, 2))]
  tiered.put("pretrained", "a", weights, {"x": 1})
  tiered.put("pruned", "b", weights, {"y": 2})
  # The kept kind is on disk, the other only in memory.
  assert disk.has("pretrained", "a") and not disk.has("pruned", "b")
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "pretrained-a.json", "pretrained-a.npz"]
  for kind, key, facts in (("pretrained", "a", {"x": 1}),
                           ("pruned", "b", {"y": 2})):
    assert tiered.has(kind, key)
    got, got_facts = tiered.entry(kind, key)
    assert got_facts == facts
    for w, g in zip(weights, got):
      np.testing.assert_array_equal(w, g)
  assert list(tiered.new_entries()) == [("pruned", "b")]


# defense_digest of each WeMem method's defaults with scores linspace(0, 1,
# 10), computed at 56709de, before the serving-only `modify_output` setting
# existed: stores and finished steps written then must still be found.
WEMEM_PINNED = {"rsw": "05cd817edb5dfb2f", "rmr": "594f50a769563cda",
                "swmr": "333582d43d7a9d06", "random": "8fefab59ad97b7c0"}


@pytest.mark.parametrize("name", sorted(WEMEM_PINNED))
def test_wemem_keys_are_unchanged_and_output_modification_shares_models(
    name):
  cls = wemem.METHODS[name]
  scores = None if name == "random" else np.linspace(0, 1, 10)
  plain = cls(scores=scores)
  served = dataclasses.replace(plain, modify_output=True)
  assert model_store.defense_digest(plain) == WEMEM_PINNED[name]
  # What is served is part of a configuration's key, not of its models'.
  assert model_store.defense_digest(served) != WEMEM_PINNED[name]
  assert (model_store.defense_digest(served, training_only=True)
          == model_store.defense_digest(plain, training_only=True))
  assert "modify_output" not in plain.config()
  assert served.config()["modify_output"] is True
  assert "modify_output" not in served.training_config()
  assert served.get_config()["modify_output"] is True
