"""Flags shared by several `wemem` subcommands (defined once, here)."""

from absl import flags

DATASET = flags.DEFINE_string(
    "dataset", "digits", "Dataset name: digits (embedded), location, cifar10, "
    "mnist, purchase100, texas100; or your own data file: npz:PATH (arrays x, "
    "y[, heldout, num_classes]) or csv:PATH (a header line, numeric feature "
    "columns, integer labels in --label_column[, a 0/1 heldout column]); see "
    "wemem_tf/data/user_data.py.")
LABEL_COLUMN = flags.DEFINE_string(
    "label_column", "label", "The label column of a --dataset=csv:PATH file.")
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the dataset's files (not needed for digits).")
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Run directory for artifacts (default: runs/<dataset "
    "name>; for npz:PATH or csv:PATH the file's stem).")
OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Replace what --output_dir holds: a run of another "
    "seed or dataset (run, pretrain, prune; refused by default), or the "
    "search of `wemem tune` (resumed by default).")
CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Folder of the model store (models/) and memorization "
    "scores (memscores/) to read and fill (default: --output_dir); point it "
    "at another run directory to reuse its pre-trained models and scores.")
OUTPUT = flags.DEFINE_string(
    "output", None, "File to write: the scores .npz (memscore) or the "
    ".tflite model (export).")
MODEL = flags.DEFINE_string(
    "model", None, "The trained model: export converts it (.h5 or .keras, "
    "e.g. RUN/model.h5 of `wemem prune`); audit attacks it as served "
    "(.tflite, .h5, .keras or a SavedModel directory).")
SEED = flags.DEFINE_integer("seed", 0, "Seed of splits, initialization and "
                            "order (>= 0).", lower_bound=0)
ARCHITECTURE = flags.DEFINE_string(
    "architecture", None, "Model architecture: a zoo name (column_fc, "
    "small_cnn, resnet18, vgg16_bn), MODULE:FUNCTION (MODULE a dotted name "
    "or a .py path; FUNCTION(input_shape, num_classes) returns a tf_keras "
    "Sequential/functional model with logit outputs; the module's code "
    "runs), or the path of a saved .h5/.keras model whose architecture is "
    "trained from fresh weights (read as data; see --trust_model_code). "
    "Default per dataset: column_fc for tabular and digits, small_cnn for "
    "mnist, resnet18 for cifar10.")
TARGET_SPARSITY = flags.DEFINE_float(
    "target_sparsity", 0.6, "Final fraction of zero weights per pruned layer.")
PRUNE_ITERATIONS = flags.DEFINE_integer(
    "prune_iterations", 5, "Pruning iterations (iteration 0 stays dense).")
EPOCHS_PER_ITERATION = flags.DEFINE_integer(
    "epochs_per_iteration", 21, "Fine-tuning epochs at most per iteration.")
PATIENCE = flags.DEFINE_integer(
    "patience", 6, "Early-stopping patience (epochs without a better dev "
    "accuracy; 6: the WeMem authors' counter).")
PRETRAIN_EPOCHS = flags.DEFINE_integer(
    "pretrain_epochs", 100, "Pre-training epochs at most.")
RESTORE_BEST = flags.DEFINE_boolean(
    "restore_best_weights", True, "Start each pruning iteration from the "
    "previous one's best dev checkpoint (False: from its last epoch, as the "
    "authors' code).")
LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 5e-4, "L2 weight decay.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Training batch size.")
NUM_SHADOWS = flags.DEFINE_integer("num_shadows", 5, "Shadow models.")
COHORTS = flags.DEFINE_boolean(
    "cohorts", False, "Train plain-MLP models (the victim, shadows and "
    "reference models) together, many at once in one compiled graph "
    "(wemem_tf.pruning.cohort); pruning with a defense whose batch update is "
    "not the plain one (RMR, SWMR, the existing defenses) stays one model "
    "at a time. Another dropout stream than one at a time: other draws of "
    "the same models, cached under their own keys.")
SPLIT = flags.DEFINE_enum(
    "split", "stratified", ["stratified", "unstratified"], "How the data "
    "protocol cuts records (docs/method.md §2): stratified = every cut keeps "
    "each class's share (ours; class-aware attacks are otherwise biased by "
    "the split); unstratified = the authors' random cuts.")
TENSORBOARD_DIR = flags.DEFINE_string(
    "tensorboard_dir", None, "Write TensorBoard summaries here (default: "
    "none): prune = the victim's pruning iterations and epochs; run = one "
    "subfolder per configuration with its victim's iterations and attack "
    "metrics; tune = each trial's settings and metrics (hparams plugin). "
    "View with `tensorboard --logdir=DIR` (README \"TensorBoard\").")
PROGRESS = flags.DEFINE_boolean(
    "progress", True, "Progress bars (count, rate, ETA) for the long stages: "
    "memorization models, model trainings, attacks and attack models, "
    "tuning trials. Drawn only when standard error is a terminal; "
    "--noprogress: never.")
