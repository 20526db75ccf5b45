"""Radiograph data: phantoms, loading folders, splits, the dataset card."""

from hipaug.data.card import (  # noqa: F401
    IMBALANCE_RATIO,
    DatasetCard,
    check_dataset,
    check_pelvic,
    dataset_card,
)
from hipaug.data.dataset import ImageDataset, concat, fingerprint_tensors, from_arrays  # noqa: F401
from hipaug.data.folders import MANIFEST_NAME  # noqa: F401
from hipaug.data.fracatlas import ImportReport, boxes_on_square, edition_of, import_release, read_boxes  # noqa: F401
from hipaug.data.fracatlas_fetch import fetch_release  # noqa: F401
from hipaug.data.images import (  # noqa: F401
    DICOM_EXTENSIONS,
    IMAGE_EXTENSIONS,
    BadImageError,
    decode_image,
    read_image,
    resize_pad,
)
from hipaug.data.limits import DataSpec, cap_per_class, drop_small_classes  # noqa: F401
from hipaug.data.loading import CACHE_DIRNAME, LOADER_VERSION, load_dataset  # noqa: F401
from hipaug.data.splits import fold_table, patient_kfold, patient_split  # noqa: F401
from hipaug.data.writer import to_uint8, write_dataset, write_image_folder  # noqa: F401
