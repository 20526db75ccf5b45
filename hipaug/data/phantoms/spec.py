"""`PhantomSpec`: the phantom sets a profile renders when no folder of real radiographs is given."""

from __future__ import annotations

from dataclasses import dataclass

from hipaug.data.phantoms.base import LIMB_PARTS
from hipaug.errors import ConfigError


@dataclass(frozen=True)
class PhantomSpec:
    """How many phantom radiographs to render, and how conspicuous their fractures are."""

    limb_per_class: int = 150  # limb images per class (paper: unknown, private data)
    limb_labels: str = "part+fracture"  # limb class scheme: part | fracture | part+fracture
    pelvic_n: int = 400  # pelvic radiographs (paper: unknown count)
    fracture_rate: float = 0.5  # share of pelvic images with a hip fracture
    difficulty: float = 1.0  # pelvic fracture conspicuity: higher = subtler (see hipaug.data.phantoms)
    limb_difficulty: float = 1.0  # limb fracture conspicuity, the same knob for the limb renderer
    limb_parts: tuple[str, ...] | None = None  # body parts rendered (None: all of phantoms.LIMB_PARTS); a
    #   subset leaves out a part whose fractures the image size cannot show (two classes per part)

    def __post_init__(self) -> None:
        if self.limb_parts is not None:
            bad = [x for x in self.limb_parts if x not in LIMB_PARTS]
            if bad or not self.limb_parts:
                raise ConfigError(f"phantom.limb_parts: {bad[0] if bad else '(empty)'!r} is not a subset of "
                                  f"{', '.join(LIMB_PARTS)}")
        if not 0.0 < self.fracture_rate < 1.0:
            raise ConfigError(f"phantom.fracture_rate={self.fracture_rate} must be in (0, 1)")
