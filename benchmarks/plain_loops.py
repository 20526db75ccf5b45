"""Training loops written the way public recipes write them: the baseline hipaug must not lose to.

Same networks as hipaug (hipaug.models.vgg.VGG16, hipaug.models.acgan.Generator / Discriminator), same batch
size, eager PyTorch, but the data come from a `torch.utils.data.DataLoader` over a
`torchvision.datasets.ImageFolder` of PNG files decoded every epoch by torchvision transforms,
the optimiser is `torch.optim.Adam` with its CPU defaults, and every step calls `.item()` for
the running loss/accuracy, as in the PyTorch tutorials and the widely copied AC-GAN recipe
(eriklindernoren/PyTorch-GAN `acgan.py`: one G forward per step, reused detached for D).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def image_folder(root: str | Path, gan: bool = False):
    """torchvision ImageFolder of 8-bit grey PNGs -> (1,S,S) tensors in [0,1] ([-1,1] for a GAN)."""
    from torchvision import datasets, transforms

    tf = [transforms.Grayscale(num_output_channels=1), transforms.ToTensor()]
    if gan:
        tf.append(transforms.Normalize([0.5], [0.5]))
    return datasets.ImageFolder(str(root), transform=transforms.Compose(tf))


def loader(ds, batch_size: int, num_workers: int, seed: int = 0, drop_last: bool = False):
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                                       drop_last=drop_last, generator=g,
                                       persistent_workers=num_workers > 0)


def train_vgg_plain(model: nn.Module, root: str | Path, epochs: int, batch_size: int, lr: float = 1e-3,
                    num_workers: int = 0, seed: int = 0) -> dict:
    """The tutorial classifier loop; returns images seen, seconds and the last epoch's loss/accuracy."""
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    ds = image_folder(root)
    dl = loader(ds, batch_size, num_workers, seed, drop_last=True)  # drop_last: a batch of 1 breaks BatchNorm
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    seen = 0
    for _epoch in range(epochs):
        model.train()
        running_loss, correct, total = 0.0, 0, 0
        for images, labels in dl:
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * images.size(0)
            correct += (outputs.argmax(1) == labels).sum().item()
            total += labels.size(0)
        seen += total
    return {"images": seen, "seconds": time.perf_counter() - t0, "loss": running_loss / max(1, total),
            "acc": correct / max(1, total)}


def train_acgan_plain(G: nn.Module, D: nn.Module, root: str | Path, steps: int, batch_size: int,
                      latent_dim: int, num_classes: int, lr: float = 2e-4, betas=(0.5, 0.999),
                      num_workers: int = 0, seed: int = 0) -> dict:
    """The public AC-GAN recipe's loop (G step, then D step on real and the same fakes, detached)."""
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    ds = image_folder(root, gan=True)
    dl = loader(ds, batch_size, num_workers, seed, drop_last=True)
    adversarial_loss = nn.BCEWithLogitsLoss()  # hipaug's D returns logits (no Sigmoid module)
    auxiliary_loss = nn.CrossEntropyLoss()
    optimizer_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    optimizer_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    G.train()
    D.train()
    step, seen = 0, 0
    d_loss_v = g_loss_v = d_acc = 0.0
    while step < steps:
        for imgs, labels in dl:
            n = imgs.shape[0]
            valid = torch.ones(n)
            fake = torch.zeros(n)
            # -- generator
            optimizer_G.zero_grad()
            z = torch.randn(n, latent_dim)
            gen_labels = torch.randint(0, num_classes, (n,))
            gen_imgs = G(z, gen_labels)
            validity, pred_label = D(gen_imgs)
            g_loss = 0.5 * (adversarial_loss(validity, valid) + auxiliary_loss(pred_label, gen_labels))
            g_loss.backward()
            optimizer_G.step()
            # -- discriminator
            optimizer_D.zero_grad()
            real_pred, real_aux = D(imgs)
            d_real_loss = (adversarial_loss(real_pred, valid) + auxiliary_loss(real_aux, labels)) / 2
            fake_pred, fake_aux = D(gen_imgs.detach())
            d_fake_loss = (adversarial_loss(fake_pred, fake) + auxiliary_loss(fake_aux, gen_labels)) / 2
            d_loss = (d_real_loss + d_fake_loss) / 2
            d_loss.backward()
            optimizer_D.step()
            # -- the recipe's per-step logging
            pred = torch.cat([real_aux, fake_aux]).detach().argmax(1).numpy()
            gt = torch.cat([labels, gen_labels]).numpy()
            d_acc = float((pred == gt).mean())
            d_loss_v, g_loss_v = d_loss.item(), g_loss.item()
            step += 1
            seen += n
            if step >= steps:
                break
    return {"images": seen, "steps": step, "seconds": time.perf_counter() - t0, "d_loss": d_loss_v,
            "g_loss": g_loss_v, "d_acc": d_acc}


def acgan_plain_step_fn(G: nn.Module, D: nn.Module, batch_size: int, latent_dim: int, num_classes: int,
                        image_size: int, lr: float = 2e-4, betas=(0.5, 0.999)):
    """One step of the plain AC-GAN loop on a fixed random batch (for the FLOP counter)."""
    optimizer_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    optimizer_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    imgs = torch.rand(batch_size, 1, image_size, image_size) * 2 - 1
    labels = torch.randint(0, num_classes, (batch_size,))

    def step():
        valid, fake = torch.ones(batch_size), torch.zeros(batch_size)
        optimizer_G.zero_grad()
        z = torch.randn(batch_size, latent_dim)
        gen_labels = torch.randint(0, num_classes, (batch_size,))
        gen_imgs = G(z, gen_labels)
        validity, pred_label = D(gen_imgs)
        g_loss = 0.5 * (F.binary_cross_entropy_with_logits(validity, valid) + F.cross_entropy(pred_label, gen_labels))
        g_loss.backward()
        optimizer_G.step()
        optimizer_D.zero_grad()
        real_pred, real_aux = D(imgs)
        fake_pred, fake_aux = D(gen_imgs.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_pred, valid) + F.cross_entropy(real_aux, labels)
                  + F.binary_cross_entropy_with_logits(fake_pred, fake) + F.cross_entropy(fake_aux, gen_labels)) / 4
        d_loss.backward()
        optimizer_D.step()
        return d_loss.item(), g_loss.item()

    return step
