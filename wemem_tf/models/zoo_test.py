"""Tests of the model builders."""

import numpy as np
import pytest

from wemem_tf.models import zoo


@pytest.mark.parametrize("name,shape", [
    ("column_fc", (446,)), ("small_cnn", (28, 28, 1)), ("small_cnn", (32, 32, 3)),
    ("resnet18", (32, 32, 3)), ("vgg16_bn", (32, 32, 3))])
def test_builders_give_logits_of_the_right_shape(name, shape):
  model = zoo.build_model(name, shape, 7)
  out = model(np.zeros((2, *shape), np.float32), training=False)
  assert out.shape == (2, 7)
  assert model.layers[-1].name == "classifier"
  assert model.layers[-1].get_config()["activation"] == "linear"


def test_column_fc_architecture():
  model = zoo.column_fc((446,), 30)
  dense = [l for l in model.layers if l.__class__.__name__ == "Dense"]
  assert [l.units for l in dense] == [256, 128, 30]


def test_resnet18_size():
  # ResNet-18 (CIFAR) has about 11.2M parameters.
  assert 11.0e6 < zoo.resnet18((32, 32, 3), 10).count_params() < 11.3e6


def test_bad_arguments():
  with pytest.raises(ValueError, match="unknown architecture"):
    zoo.build_model("alexnet", (3,), 2)
  with pytest.raises(ValueError, match="num_classes"):
    zoo.column_fc((3,), 1)
  with pytest.raises(ValueError, match="input_shape"):
    zoo.small_cnn((10,), 3)
