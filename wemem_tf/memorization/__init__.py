"""Memorization scores (Feldman & Zhang) computed fast and kept aligned.

  scores = memorization.estimate("column_fc", x, y, num_models=256)
  scores.save("memscores.npz")
  scores = memorization.MemScores.load("memscores.npz",
                                       fingerprint=ds.fingerprint,
                                       index=splits.pool)
  risky = scores.risky_mask(tau=0.6)        # or share=0.1
"""

from wemem_tf.memorization.ensemble import mlp_spec
from wemem_tf.memorization.ensemble import MLPEnsemble
from wemem_tf.memorization.ensemble import MLPSpec
from wemem_tf.memorization.estimate import cached_estimate
from wemem_tf.memorization.estimate import estimate
from wemem_tf.memorization.estimate import estimate_dataset
from wemem_tf.memorization.estimate import DESIGNS
from wemem_tf.memorization.estimate import sample_membership
from wemem_tf.memorization.estimate import scores_from_predictions
from wemem_tf.memorization.proxy import learning_speed_proxy
from wemem_tf.memorization.proxy import spearman
from wemem_tf.memorization.scores import MemScores
