"""The five existing defenses WeMem is compared with (docs/method.md §6).

  PPB        pair-based posterior balancing (Yuan & Zhang 2022)
  AdvReg     adversarial regularization (Nasr et al. 2018)
  DPSGD      DP-SGD with tensorflow-privacy's DP Adam (Abadi et al. 2016)
  RelaxLoss  target-loss relaxation (Chen et al. 2022)
  HAMP       high-entropy soft labels + output modification (Chen &
             Pattabiraman 2024)

All are registered in `catalog` under `ppb`, `advreg`, `dp`, `relaxloss`
and `hamp`, each constructible with no arguments.
"""

from wemem_tf.defenses.advreg import AdvReg
from wemem_tf.defenses.dp_sgd import DPSGD
from wemem_tf.defenses.hamp import HAMP
from wemem_tf.defenses.ppb import PPB
from wemem_tf.defenses.relaxloss import RelaxLoss

EXISTING = {cls.name: cls for cls in (PPB, AdvReg, DPSGD, RelaxLoss, HAMP)}

__all__ = ["AdvReg", "DPSGD", "EXISTING", "HAMP", "PPB", "RelaxLoss"]
