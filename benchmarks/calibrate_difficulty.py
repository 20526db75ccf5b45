"""Calibrate the phantom `difficulty` knob: how well does a plain CNN from scratch detect hip fractures?

For each difficulty, render ``--n`` AP pelvis phantoms at 64 px (half fractures), split them 75/25
(stratified, fixed per seed), train a small plain CNN (4 conv blocks + linear, Adam lr 1e-3,
batch 16, 20 epochs, no augmentation, no pre-training) and report held-out accuracy and ROC AUC (scikit-learn), over
``--seeds`` repetitions (each with its own phantom seed, split and initialisation).

Target band at the default difficulty=1.0 (see hipaug.data.phantoms): accuracy ~0.65-0.85 and AUC
below ~0.92, i.e. clearly better than chance but far from perfect, so that pre-training on
limb phantoms has room to help.

    python benchmarks/calibrate_difficulty.py                       # 0.5, 1.0, 1.5 x 3 seeds
    python benchmarks/calibrate_difficulty.py --difficulties 1.0 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from torch import nn

from hipaug.data.phantoms import render_pelvic


class PlainCNN(nn.Module):
    """Four conv blocks (conv-BN-ReLU-maxpool) and a linear head: a from-scratch baseline."""

    def __init__(self, width: int = 16):
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 8 * width]
        blocks = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).mean(dim=(2, 3))
        return self.head(h).squeeze(1)


def run_once(difficulty: float, seed: int, n: int, epochs: int, size: int,
             batch_size: int = 16) -> dict:
    batch = render_pelvic(n, image_size=size, seed=seed, difficulty=difficulty)
    y = (batch.labels == batch.class_names.index("fracture")).astype(np.int64)
    x = batch.images[:, None].astype(np.float32)
    idx_tr, idx_te = train_test_split(np.arange(n), test_size=0.25, stratify=y, random_state=seed)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = PlainCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    lossf = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(x[idx_tr]), torch.from_numpy(y[idx_tr]).float()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(idx_tr), generator=g)
        for i in range(0, len(perm), batch_size):
            b = perm[i:i + batch_size]
            opt.zero_grad()
            loss = lossf(model(xt[b]), yt[b])
            loss.backward()
            opt.step()
    # re-estimate BatchNorm statistics over the whole training set ("precise BN"): the running
    # averages of a few dozen small batches are too noisy and shift the 0.5 threshold
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i in range(0, len(idx_tr), 64):
            model(xt[i:i + 64])
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(x[idx_te]))).numpy()
    return dict(acc=accuracy_score(y[idx_te], p > 0.5), auc=roc_auc_score(y[idx_te], p))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--difficulties", type=float, nargs="+", default=[0.5, 1.0, 1.5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=400, help="pelvic phantoms per run (75 %% train)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.time()
    print(f"{'difficulty':>10s} {'seed':>4s} {'acc':>6s} {'auc':>6s}")
    for d in a.difficulties:
        accs, aucs = [], []
        for s in a.seeds:
            r = run_once(d, s, a.n, a.epochs, a.size)
            accs.append(r["acc"])
            aucs.append(r["auc"])
            print(f"{d:10.2f} {s:4d} {r['acc']:6.3f} {r['auc']:6.3f}", flush=True)
        print(f"{d:10.2f} mean acc {np.mean(accs):.3f} [{min(accs):.3f}, {max(accs):.3f}]  "
              f"AUC {np.mean(aucs):.3f} [{min(aucs):.3f}, {max(aucs):.3f}]", flush=True)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
