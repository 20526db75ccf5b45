"""hipaug: an executable reproduction of Lin & Chung (TAAI 2019).

AC-GAN augmentation of limb radiographs, a VGG-16 realism filter, and transfer
learning to hip-fracture detection on pelvic radiographs. See the book for the
paper, the reader's annotations and the experiments that test them.
"""

__version__ = "0.1.0"
