"""Flags shared by several `wemem` subcommands (defined once, here)."""

from absl import flags

DATASET = flags.DEFINE_string(
    "dataset", "digits", "Dataset name: digits (embedded), location, cifar10, "
    "mnist, purchase100, texas100.")
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder with the dataset's files (not needed for digits).")
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Run directory for artifacts (default: runs/<dataset>).")
CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Folder of the model store (models/) and memorization "
    "scores (memscores/) to read and fill (default: --output_dir); point it "
    "at another run directory to reuse its pre-trained models and scores.")
OUTPUT = flags.DEFINE_string(
    "output", None, "File to write: the scores .npz (memscore) or the "
    ".tflite model (export).")
SEED = flags.DEFINE_integer("seed", 0, "Seed of splits, initialization and order.")
ARCHITECTURE = flags.DEFINE_string(
    "architecture", None, "Model architecture (default per dataset: column_fc "
    "for tabular and digits, small_cnn for mnist, resnet18 for cifar10).")
TARGET_SPARSITY = flags.DEFINE_float(
    "target_sparsity", 0.6, "Final fraction of zero weights per pruned layer.")
PRUNE_ITERATIONS = flags.DEFINE_integer(
    "prune_iterations", 5, "Pruning iterations (iteration 0 stays dense).")
EPOCHS_PER_ITERATION = flags.DEFINE_integer(
    "epochs_per_iteration", 21, "Fine-tuning epochs at most per iteration.")
PATIENCE = flags.DEFINE_integer(
    "patience", 5, "Early-stopping patience (epochs) on dev accuracy.")
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
