"""The pre-training conditions compared in Table VIII and beyond (Lin & Chung 2019, Section III).

A condition says what the hip-fracture classifier's backbone is pre-trained on before it is
fine-tuned on pelvic radiographs. The paper compares `without_gan` and `with_gan`; the others
separate what the GAN adds from what pre-training, classic augmentation or more images add.
Each condition's traits are here, once: the pipeline, the grid and the claims ledger read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hipaug.errors import ConfigError


@dataclass(frozen=True)
class Condition:
    """One pre-training condition and what it pre-trains on."""

    name: str  # the name profiles, tables and the ledger use
    pretrained: bool  # False: fine-tuning starts from random weights (no limb pre-training)
    augment: bool  # classic augmentation (flip, rotate, scale, intensity) of the real limb images
    synthetic: str | None  # AC-GAN images added to the real ones: "filtered" (the realism filter's
    #   choice), "unfiltered" (as many, drawn without looking at the filter's scores) or None
    what: str  # one line for the book


_ALL = (
    Condition("scratch", False, False, None, "no pre-training: fine-tuning starts from random weights"),
    Condition("classic", True, True, None, "the real limb images with classic augmentation"),
    Condition("without_gan", True, False, None, "the real limb images (the paper's \"without GAN\")"),
    Condition("with_gan", True, False, "filtered",
              "the real limb images and the AC-GAN images the realism filter keeps (the paper's \"with GAN\")"),
    Condition("unfiltered_gan", True, False, "unfiltered",
              "the real limb images and as many AC-GAN images drawn without the filter"),
)
BY_NAME = {c.name: c for c in _ALL}
CONDITIONS = tuple(BY_NAME)  # every condition, in the order tables show them
GAN_CONDITIONS = tuple(c.name for c in _ALL if c.synthetic)  # pre-trained on images the filter chose or saw


def condition(name: str) -> Condition:
    """The condition called `name`; a one-line ConfigError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"condition={name!r} is not one of {', '.join(CONDITIONS)}") from None
