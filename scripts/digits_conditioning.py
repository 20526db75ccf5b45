"""Does the AC-GAN's class conditioning work? A check on scikit-learn's bundled 8x8 digits.

The digits (no download) are upscaled to 32 px, the AC-GAN (Odena et al. 2017) is trained on
a stratified 75 % split, and an INDEPENDENT classifier (logistic regression on the real 32-px
training digits) scores the samples:

- GAN-test accuracy (Shmelkov et al. 2018): fraction of samples of class c classified as c
  (rewards class-faithful samples, but also a generator that draws one image per class);
- GAN-train accuracy: a classifier trained on samples only, tested on the held-out real digits
  (falls when samples lack the diversity of the real classes);
- diversity: mean pairwise L2 distance between images of the same class, samples vs real.

Usage: python scripts/digits_conditioning.py [--steps 1500] [--mode-seeking 1.0] [--out build] [--fresh]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hipaug import data
from hipaug.core import write_json
from hipaug.errors import HipaugError
from hipaug.training import ACGANConfig, sample_dataset, save_grid, train_acgan


def load_digits_32(seed: int = 0, test_size: float = 0.25):
    """Return (train ImageDataset, test images (N,1024), test labels) of the 32-px digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).clamp(0, 1)
    y = d.target.astype(np.int64)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed)
    names = tuple(str(i) for i in range(10))
    train = data.from_arrays(x[idx_tr], y[idx_tr], names)
    return train, x[idx_te].flatten(1).numpy(), y[idx_te]


def fit_classifier(x: np.ndarray, y: np.ndarray):
    """A plain multinomial logistic regression on pixels: independent of the GAN's D."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=3000).fit(x, y)


def within_class_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Mean pairwise L2 distance between images of the same class, averaged over classes."""
    out = []
    for c in np.unique(y):
        t = torch.as_tensor(x[y == c], dtype=torch.float64)
        n = t.shape[0]
        if n < 2:
            continue
        d = torch.cdist(t, t)
        out.append(float(d.sum() / (n * (n - 1))))
    return float(np.mean(out))


def evaluate(run_dir: Path, train, x_test: np.ndarray, y_test: np.ndarray, per_class: int, seed: int) -> dict:
    """Sample `per_class` digits per class and score them against the real data."""
    x_train = train.images.flatten(1).numpy()
    y_train = train.labels.numpy()
    clf = fit_classifier(x_train, y_train)
    gen = sample_dataset(run_dir, per_class, seed=seed + 1)
    xg = gen.images.flatten(1).numpy()
    yg = gen.labels.numpy()
    pred = clf.predict(xg)
    per_class_acc = {str(c): float((pred[yg == c] == c).mean()) for c in range(10)}
    gan_train = fit_classifier(xg, yg).score(x_test, y_test)
    real_div = within_class_distance(x_train, y_train)
    gen_div = within_class_distance(xg, yg)
    return {
        "real_classifier_test_accuracy": float(clf.score(x_test, y_test)),
        "gan_test_accuracy": float((pred == yg).mean()),
        "gan_test_per_class": per_class_acc,
        "gan_train_accuracy": float(gan_train),
        "diversity_real": real_div,
        "diversity_generated": gen_div,
        "diversity_ratio": gen_div / real_div,
        "samples": gen.images,
        "sample_labels": gen.labels,
    }


def run(
    steps: int = 1500,
    g_width: int = 16,
    d_width: int = 32,
    batch_size: int = 32,
    per_class: int = 100,
    seed: int = 0,
    out: Path = Path("build"),
    run_name: str = "digits_acgan_run",
    fresh: bool = False,
    **overrides,
) -> dict:
    """Train (or resume) the digits AC-GAN under `out/run_name`, evaluate it, save a grid."""
    out = Path(out)
    run_dir = out / run_name
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    train, x_test, y_test = load_digits_32(seed)
    kw = dict(
        image_size=32, latent_dim=64, g_width=g_width, d_width=d_width, steps=steps, batch_size=batch_size,
        log_every=100, sample_every=500, checkpoint_every=500, device="cpu",
    )
    kw.update(overrides)
    cfg = ACGANConfig(**kw)
    t0 = time.perf_counter()
    run_ = train_acgan(cfg, train, run_dir, seed=seed, resume=True)
    train_s = time.perf_counter() - t0
    res = evaluate(run_dir, train, x_test, y_test, per_class, seed)
    res["train_seconds"] = train_s
    res["steps"] = run_.step
    res["config"] = cfg.to_dict()
    grid_path = out / "digits_acgan_samples.png"
    imgs, labs = res.pop("samples"), res.pop("sample_labels")
    ncol = min(per_class, 10)
    pick = torch.cat([torch.nonzero(labs == c).flatten()[:ncol] for c in range(10)])
    save_grid(imgs[pick], grid_path, nrow=ncol)
    res["grid"] = str(grid_path)
    write_json(out / "digits_conditioning.json", res)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--g-width", type=int, default=16)
    p.add_argument("--d-width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--mode-seeking", type=float, default=1.0, help="0 gives the plain AC-GAN")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 suits a shared machine)")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("build"))
    p.add_argument("--fresh", action="store_true", help="delete an existing run folder first")
    a = p.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        r = run(a.steps, a.g_width, a.d_width, a.batch_size, a.per_class, a.seed, a.out, fresh=a.fresh,
                mode_seeking=a.mode_seeking)
    except HipaugError as e:
        print(f"hipaug: error: {e}", file=sys.stderr)
        return 2
    print(f"steps {r['steps']}  mode_seeking {r['config']['mode_seeking']}  "
          f"training time (this call) {r['train_seconds']:.0f} s")
    print(f"real-digit classifier, held-out accuracy : {r['real_classifier_test_accuracy']:.3f}")
    print(f"GAN-test accuracy (chance 0.100)         : {r['gan_test_accuracy']:.3f}")
    print("  per class: " + "  ".join(f"{c}:{v:.2f}" for c, v in r["gan_test_per_class"].items()))
    print(f"GAN-train accuracy (on held-out real)    : {r['gan_train_accuracy']:.3f}")
    print(f"within-class L2 diversity: generated {r['diversity_generated']:.3f}  real {r['diversity_real']:.3f}"
          f"  ratio {r['diversity_ratio']:.2f}")
    print(f"sample grid: {r['grid']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
