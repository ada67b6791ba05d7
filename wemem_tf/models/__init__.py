"""Model zoo: ColumnFC, a small CNN, ResNet-18 and VGG-16-BN (logit outputs);
architectures from names, code or files (`resolve_architecture`)."""

from wemem_tf.models.zoo import build_model
from wemem_tf.models.zoo import BUILDERS
from wemem_tf.models.zoo import column_fc
from wemem_tf.models.zoo import DEFAULT_ARCHITECTURE
from wemem_tf.models.zoo import resnet18
from wemem_tf.models.zoo import small_cnn
from wemem_tf.models.zoo import vgg16_bn
from wemem_tf.models.files import load_model
from wemem_tf.models.architecture import Architecture
from wemem_tf.models.architecture import architecture_name
from wemem_tf.models.architecture import ArchitectureLike
from wemem_tf.models.architecture import build_checked
from wemem_tf.models.architecture import check_model
from wemem_tf.models.architecture import resolve_architecture
