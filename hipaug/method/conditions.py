"""The pre-training conditions compared in Table VIII and beyond (Lin & Chung 2019, Section III)."""

# What the backbone is pre-trained on before pelvic fine-tuning; the paper compares the middle two.
CONDITIONS = ("scratch", "classic", "without_gan", "with_gan", "unfiltered_gan")
