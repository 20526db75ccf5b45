"""Foundation shared by every step: atomic I/O, seeds, devices, progress, the artifact store."""

from hipaug.core.io import (  # noqa: F401
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    read_json,
    read_yaml,
    torch_load,
    write_if_changed,
    write_json,
)
from hipaug.core.runtime import (  # noqa: F401
    DTYPES,
    SUPPORTED_SIZES,
    check_image_size,
    default_dtype,
    deterministic,
    module_dtype,
    progress,
    resolve_device,
    torch_dtype,
    torch_threads,
    upcast,
)
from hipaug.core.seeds import derive_seed  # noqa: F401
