"""The AC-GAN's room (paper step 2, the generator): its configuration, losses, loop, weight average, run folder and sampling.

The networks are `hipaug.models.acgan` (models are networks only); everything that trains and
samples them is here: `config` (`ACGANConfig`), `losses` (D's and G's losses on logits, MSGAN's
mode-seeking term), `loop` (`train_acgan`), `ema` (the generator's weight average and its
BatchNorm statistics), `run` (the run folder, its record and resume checks) and `sampling` (the
synthetic pool and the sample grids).
"""

from hipaug.training.gan.config import ACGANConfig  # noqa: F401
from hipaug.training.gan.ema import ema_update, recalibrate_batchnorm  # noqa: F401
from hipaug.training.gan.loop import train_acgan  # noqa: F401
from hipaug.training.gan.losses import discriminator_loss, generator_loss, mode_seeking_loss, pair_labels  # noqa: F401
from hipaug.training.gan.run import HISTORY_COLUMNS, ACGANRun, read_history, read_run_config  # noqa: F401
from hipaug.training.gan.sampling import load_generator, sample, sample_dataset, sample_to_folder, save_grid  # noqa: F401
