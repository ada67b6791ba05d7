"""`wemem memscore` writes the scores file with the required arrays."""

import numpy as np
from absl import flags
from absl.testing import flagsaver

import wemem_tf  # pylint: disable=unused-import
from wemem_cli import memscore_cmd
from wemem_tf import data as data_lib
from wemem_tf import memorization


def test_memscore_writes_npz_for_digits(tmp_path, capsys):
  out = str(tmp_path / "scores.npz")
  with flagsaver.flagsaver():
    flags.FLAGS(["wemem", "--dataset=digits", "--num_models=4", "--epochs=1",
                 f"--output={out}", "--seed=3", "--noprogress"])
    memscore_cmd.main(["memscore"])
  with np.load(out, allow_pickle=False) as npz:
    assert {"index", "score", "included", "excluded", "fingerprint"} <= set(
        npz.files)
    index = npz["index"]
  ds = data_lib.load_dataset("digits")
  pool = data_lib.splits_for(ds, 3, num_shadows=0).pool
  np.testing.assert_array_equal(index, pool)
  scores = memorization.MemScores.load(out, fingerprint=ds.fingerprint,
                                       index=pool)
  assert scores.num_models == 4 and scores.epochs == 1 and scores.seed == 3
  np.testing.assert_array_equal(scores.included + scores.excluded, 4)
  assert '"output"' in capsys.readouterr().out


def test_memscore_balanced_design_scores_every_record(tmp_path):
  """--memscore_design=balanced: each record in 3 of the 4 models."""
  out = str(tmp_path / "scores.npz")
  with flagsaver.flagsaver():
    flags.FLAGS(["wemem", "--dataset=digits", "--num_models=4", "--epochs=1",
                 f"--output={out}", "--seed=3", "--noprogress",
                 "--memscore_design=balanced"])
    memscore_cmd.main(["memscore"])
  scores = memorization.MemScores.load(out)
  np.testing.assert_array_equal(scores.included, 3)  # round(0.7 * 4)
  np.testing.assert_array_equal(scores.excluded, 1)
  assert np.all(np.isfinite(scores.score))
  assert scores.details["design"] == "balanced"
