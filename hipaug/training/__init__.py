"""Training loops: the classifier loop, the AC-GAN (`hipaug.training.gan`), augmentation, batched inference."""

from hipaug.training.classifier import (  # noqa: F401
    TrainedClassifier,
    TrainResult,
    class_weights_from_labels,
    load_classifier,
    train_classifier,
)
from hipaug.training.classifier_config import TrainConfig  # noqa: F401
from hipaug.training.gan import (  # noqa: F401
    HISTORY_COLUMNS,
    ACGANConfig,
    ACGANRun,
    discriminator_loss,
    generator_loss,
    load_generator,
    mode_seeking_loss,
    read_history,
    read_run_config,
    recalibrate_batchnorm,
    sample,
    sample_dataset,
    sample_to_folder,
    save_grid,
    train_acgan,
)
from hipaug.training.inference import extract_features, predict_proba  # noqa: F401
