"""Tests that SAMIA's attack model has the original's sizes and structure
(mia_prune, transformer.py: Transformer with its defaults) and that its
input batch norm trains and scores as it should. The known-answer test (a
memorizing model is detected) is in suite_test.py; feature and small-model
tests are in nn_test.py."""

import numpy as np
import pytest

from attacks import base
from attacks import compiled
from attacks import inputs
from attacks import samia
from wemem_tf._keras import keras

CLASSES = 30  # Location


def _layers(model, kind):
  return [l for l in model.layers if isinstance(l, kind)]


def _torch_parameter_count(c, d=64, ff=128, blocks=3):
  """Trainable parameters of the original's PyTorch model for c classes."""
  batch_norm = 2 * 3 * c
  fc1 = 3 * d + d
  attention = (3 * d * d + 3 * d) + (d * d + d)  # in_proj + out_proj
  feed_forward = (d * ff + ff) + (ff * d + d)
  layer_norms = 2 * 2 * d
  fc2 = c * d * d + d
  fc3 = d * 2 + 2
  return (batch_norm + fc1 + blocks * (attention + feed_forward + layer_norms)
          + fc2 + fc3)


def test_default_model_has_the_original_structure():
  model = samia.samia_model((CLASSES, 3))
  layers = keras.layers
  # Input batch norm, first, one (mean, variance) per (class, channel).
  norm = model.layers[1]
  assert isinstance(norm, layers.BatchNormalization)
  assert norm.name == "input_norm"
  assert list(norm.axis) == [1, 2]
  # (Keras keeps the reduced batch axis: (1, c, 3).)
  assert np.squeeze(norm.gamma.numpy(), 0).shape == (CLASSES, 3)
  assert np.squeeze(norm.moving_variance.numpy(), 0).shape == (CLASSES, 3)
  assert len(_layers(model, layers.BatchNormalization)) == 1
  # Token embedding 3 -> 64 with GELU, no per-class embedding.
  embed = model.get_layer("token_embedding")
  assert tuple(embed.kernel.shape) == (3, 64)
  assert embed.get_config()["activation"] == "gelu"
  assert not [l for l in model.layers if isinstance(l, samia.ClassEmbedding)]
  # Three encoder blocks: 4 heads of 16, feed-forward 128 (GELU), width 64.
  attention = _layers(model, layers.MultiHeadAttention)
  assert len(attention) == 3
  for i, att in enumerate(attention, 1):
    config = att.get_config()
    assert (config["num_heads"], config["key_dim"]) == (4, 16)
    assert config["dropout"] == pytest.approx(0.2)
    assert tuple(att.output.shape) == (None, CLASSES, 64)
    ff1, ff2 = model.get_layer(f"block{i}_ff1"), model.get_layer(f"block{i}_ff2")
    assert tuple(ff1.kernel.shape) == (64, 128)
    assert ff1.get_config()["activation"] == "gelu"
    assert tuple(ff2.kernel.shape) == (128, 64)
    for name in (f"block{i}_norm1", f"block{i}_norm2"):
      assert model.get_layer(name).epsilon == pytest.approx(1e-5)
  assert len(_layers(model, layers.LayerNormalization)) == 6
  assert len(_layers(model, layers.Dense)) == 1 + 2 * 3 + 2
  dropouts = _layers(model, compiled.GeneratorDropout)
  assert len(dropouts) == 3 * 3
  assert all(l.rate == pytest.approx(0.2) for l in dropouts)
  assert not _layers(model, layers.GlobalAveragePooling1D)
  # Head: flatten (c x 64) -> Dense 64 (ReLU) -> Dense 2, the last layers.
  flatten, head_fc, logits = model.layers[-3:]
  assert isinstance(flatten, layers.Flatten)
  assert tuple(flatten.output.shape) == (None, CLASSES * 64)
  assert head_fc.name == "head_fc"
  assert tuple(head_fc.kernel.shape) == (CLASSES * 64, 64)
  assert head_fc.get_config()["activation"] == "relu"
  assert logits.name == "attack_logits"
  assert tuple(logits.kernel.shape) == (64, 2)
  assert model.output_shape == (None, 2)
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable == _torch_parameter_count(CLASSES) == 223926


def test_options_and_validation():
  small = samia.samia_model((5, 3), 16, 2, 1, input_norm=False,
                            class_embedding=True)
  assert not _layers(small, keras.layers.BatchNormalization)
  assert small.get_layer("class_embedding").table.shape == (5, 16)
  assert len(_layers(small, keras.layers.MultiHeadAttention)) == 1
  assert tuple(small.get_layer("block1_ff1").kernel.shape) == (16, 128)
  assert tuple(small.get_layer("head_fc").kernel.shape) == (5 * 16, 16)
  attack = samia.samia(base.AttackOptions(samia_width=32, samia_heads=2,
                                          samia_layers=2))
  built = attack.build_model((7, 3))
  assert len(_layers(built, keras.layers.MultiHeadAttention)) == 2
  assert tuple(built.get_layer("token_embedding").kernel.shape) == (3, 32)
  # The attack's defaults are the original's sizes.
  assert samia.samia().build_model((30, 3)).count_params() == 224106
  with pytest.raises(ValueError, match="multiple of heads"):
    samia.samia_model((5, 3), 30, 4)
  with pytest.raises(ValueError, match="classes, channels"):
    samia.samia_model((15,))


def _outputs(rng, n, classes, member):
  labels = rng.integers(0, classes, n)
  logits = rng.normal(0, 1, (n, classes))
  logits[np.arange(n), labels] += 6.0 if member else 0.0
  sens = rng.gamma(1.0, 0.2 if member else 1.0, (n, classes))
  return inputs.ModelOutputs.from_logits(logits, labels, sens)


def test_batch_norm_model_trains_and_scores_with_moving_statistics():
  """The new structure (input batch norm, GELU, flatten head) learns through
  the compiled training loop, and scoring uses the batch norm's moving
  statistics. One block keeps the test fast; the sizes are checked above."""
  rng = np.random.default_rng(3)
  classes = 6
  data = base.AttackerData((inputs.MembershipOutputs(
      _outputs(rng, 150, classes, True), _outputs(rng, 150, classes, False)),))
  attack = samia.samia(base.AttackOptions(
      max_epochs=3, patience=3, batch_size=64, samia_width=64, samia_heads=4,
      samia_layers=1))
  calibration = attack.fit(data)
  assert calibration.choose().balanced_accuracy > 0.9
  norm = attack.loop.model.get_layer("input_norm")
  assert np.abs(norm.moving_mean.numpy()).max() > 0.01
  members = _outputs(rng, 100, classes, True)
  scores_in = attack.score(base.TargetQuery(members))
  scores_out = attack.score(base.TargetQuery(_outputs(rng, 100, classes,
                                                      False)))
  assert np.mean(scores_in[:, None] > scores_out[None]) > 0.9
  # Scoring uses no dropout and no batch statistics: a record scores the
  # same alone as within a batch.
  np.testing.assert_allclose(
      attack.score(base.TargetQuery(members.take([7]))), scores_in[[7]],
      rtol=1e-5, atol=1e-5)
