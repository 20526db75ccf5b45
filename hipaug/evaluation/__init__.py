"""Evaluation: metrics, paired statistics, GAN quality, Grad-CAM."""

from hipaug.evaluation.cam import cam_localization, cam_maps, grad_cam, last_conv, last_conv_features  # noqa: F401
from hipaug.evaluation.metrics import (  # noqa: F401
    METRICS,
    PAPER_METRICS,
    EvaluationError,
    binarize,
    binary_metrics,
    format_mean_sd,
    roc_points,
    summarize,
)
from hipaug.evaluation.quality import (  # noqa: F401
    class_diversity,
    compare_diversity,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
    gan_test_accuracy,
    gan_train_test_table,
    precision_recall,
    real_vs_real_baseline,
)
from hipaug.evaluation.stats import (  # noqa: F401
    PAIR_EXTRA_KEYS,
    curve_column,
    fold_test_train_ratio,
    min_detectable_difference,
    paired_test,
    paired_tests,
    training_stability,
)
