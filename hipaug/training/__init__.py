"""Training loops: the classifier loop, the AC-GAN loop and losses, augmentation."""

from hipaug.training.classifier import TrainResult, class_weights_from_labels, train_classifier  # noqa: F401
from hipaug.training.classifier_config import TrainConfig  # noqa: F401
from hipaug.training.gan import train_acgan  # noqa: F401
from hipaug.training.gan_config import ACGANConfig  # noqa: F401
from hipaug.training.gan_ema import recalibrate_batchnorm  # noqa: F401
from hipaug.training.gan_losses import discriminator_loss, generator_loss, mode_seeking_loss  # noqa: F401
from hipaug.training.gan_run import HISTORY_COLUMNS, ACGANRun, read_history, read_run_config  # noqa: F401
from hipaug.training.gan_sampling import (  # noqa: F401
    load_generator,
    sample,
    sample_dataset,
    sample_to_folder,
    save_grid,
)
from hipaug.training.inference import extract_features, predict_proba  # noqa: F401
