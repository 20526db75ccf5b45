"""Networks: the VGG-16 and the AC-GAN generator and discriminator."""

from hipaug.models.acgan import Discriminator, Generator, NetworkSpec, build_generator, build_models  # noqa: F401
from hipaug.models.vgg import (  # noqa: F401
    VGG16,
    ArchSpec,
    grey_imagenet_stats,
    imagenet_checkpoint_path,
    load_imagenet_weights,
    load_model,
    pooled_size,
    save_model,
    scaled_channels,
    vgg16,
)
