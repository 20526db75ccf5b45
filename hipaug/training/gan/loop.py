"""The AC-GAN training loop (paper step 2, the generator): train G and D on the real limb images.

Lin & Chung (TAAI 2019) augment a small limb X-ray set with an AC-GAN (Odena et al. 2017) before a
VGG-16 filters the realistic samples. Each step makes `n_critic` D updates, the last on a fake batch
that G's update then reuses, moves the EMA of G, and every so often writes a history row, a sample
grid and a checkpoint. Runs are seeded, checkpointed atomically and resume bit for bit on CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hipaug.core import atomic_torch_save, default_dtype, deterministic, progress, resolve_device, upcast
from hipaug.core.seeds import torch_generator, torch_global_seed
from hipaug.errors import ConfigError, DataError
from hipaug.models.acgan import build_models
from hipaug.training.augment import check_diffaug, diff_augment
from hipaug.training.gan.config import ACGANConfig
from hipaug.training.gan.ema import ema_update
from hipaug.training.gan.losses import (
    D_STATS,
    STAT_ORDER,
    discriminator_loss,
    generator_loss,
    mode_seeking_loss,
    pair_labels,
)
from hipaug.training.gan.run import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    HISTORY_COLUMNS,
    SAMPLES_DIR,
    ACGANRun,
    history_frame,
    open_run,
    write_history,
)
from hipaug.training.gan.sampling import fixed_grid_inputs, write_grid

__all__ = ["train_acgan"]


@dataclass
class _Loop:
    """What the steps of one run read and update."""

    cfg: ACGANConfig  # the run's configuration
    run_dir: Path  # where the run's files go
    record: dict[str, Any]  # config.json's content, also stored in every checkpoint
    device: torch.device  # where the networks and the images live
    G: nn.Module  # the generator being trained
    D: nn.Module  # the discriminator being trained
    G_ema: nn.Module  # EMA of G's weights: grids and samples come from it
    opt_g: torch.optim.Optimizer  # Adam of G
    opt_d: torch.optim.Optimizer  # Adam of D
    gen: torch.Generator  # every batch index, z, label and DiffAugment draw comes from here
    x_all: torch.Tensor  # every training image on the device, in [-1, 1]
    y_all: torch.Tensor  # their labels
    diffaug: Any  # parsed DiffAugment policy
    grid_z: torch.Tensor  # fixed noise of the sample grids
    grid_y: torch.Tensor  # their labels
    acc: torch.Tensor  # stats (STAT_ORDER) summed since the last history row
    acc_n: int = 0  # steps summed into acc
    step: int = 0  # completed G steps
    rows: list[list[float]] = field(default_factory=list)  # history rows so far ([step, *HISTORY_COLUMNS])

    @property
    def use_cuda(self) -> bool:
        return self.device.type == "cuda"


def train_acgan(
    cfg: ACGANConfig,
    dataset: Any,
    run_dir: str | Path,
    seed: int,
    resume: bool = False,
    stop_after: int | None = None,
) -> ACGANRun:
    """Train an AC-GAN on `dataset` (ImageDataset) into `run_dir` and return the run.

    `resume=True` continues from `run_dir/checkpoint.pt` (after checking config, seed and
    dataset fingerprint) and on CPU reaches the same weights bit for bit as an uninterrupted
    run. `stop_after=k` ends after step k without a final checkpoint, as if the process had
    been killed (for tests and time-boxed jobs).
    """
    _check_inputs(cfg, dataset, stop_after)
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    record, ckpt = open_run(run_dir, cfg, dataset, seed, resume)
    # Initial weights and any global draw in the loop come from torch's global generator: seed it
    # for the run (a checkpoint carries its state) and give the caller its own state back after.
    # Every network, draw and statistic in the configured precision (float64: CPU-independent results).
    with torch_global_seed(seed, "acgan"), default_dtype(cfg.dtype):
        loop = _setup(cfg, dataset, seed, device, run_dir, record)
        if ckpt is not None:
            _restore(loop, ckpt)
        loop.G.train()
        loop.D.train()
        end = cfg.steps if stop_after is None else min(cfg.steps, int(stop_after))
        bar = progress(range(loop.step, end), total=cfg.steps, initial=loop.step, desc="AC-GAN")
        for _ in bar:
            _train_step(loop)
            _write_outputs(loop, bar)
        bar.close()
    # Stopped early (stop_after): files stay as a killed run would leave them.
    return ACGANRun(run_dir, tuple(dataset.class_names), history_frame(loop.rows), loop.step, cfg, int(seed))


def _check_inputs(cfg: ACGANConfig, dataset: Any, stop_after: int | None) -> None:
    if not isinstance(cfg, ACGANConfig):
        raise ConfigError(f"cfg must be an ACGANConfig, got {type(cfg).__name__}")
    images = dataset.images
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[0] == 0:
        raise DataError(f"dataset images must be a non-empty (N,1,S,S) tensor, got {tuple(images.shape)}")
    if images.shape[-1] != cfg.image_size or images.shape[-2] != cfg.image_size:
        raise ConfigError(f"image_size={cfg.image_size} but the dataset images are {images.shape[-1]} px")
    if len(dataset.class_names) < 1:
        raise DataError("dataset has no classes")
    if stop_after is not None and stop_after < 0:
        raise ConfigError(f"stop_after={stop_after} must be >= 0")


def _setup(cfg: ACGANConfig, dataset: Any, seed: int, device: torch.device, run_dir: Path,
           record: dict[str, Any]) -> _Loop:
    """Build seeded networks and optimisers, and put the images on the device."""
    num_classes = len(dataset.class_names)
    deterministic()
    G, D = build_models(cfg, num_classes)
    G_ema = copy.deepcopy(G)
    for p in G_ema.parameters():
        p.requires_grad_(False)
    # On CPU, oneDNN runs these narrow convolutions faster in NHWC (channels_last) order; on
    # CUDA cuDNN picks its own layout. Fused Adam is one kernel per step instead of a per-tensor
    # loop. Both were measured in benchmarks/bench_levers.py (record levers_acgan).
    fmt = torch.channels_last if device.type == "cpu" else torch.preserve_format
    for m in (G, D, G_ema):
        m.to(device=device, memory_format=fmt)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas, fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas, fused=True)
    # Images live on the device in [-1, 1] (small data sets by design of the paper).
    use_cuda = device.type == "cuda"
    x_all = dataset.images.to(torch.get_default_dtype())
    if use_cuda:
        x_all = x_all.pin_memory()
    x_all = x_all.to(device, non_blocking=use_cuda).mul(2).sub(1)
    y_all = dataset.labels.long().to(device, non_blocking=use_cuda)
    grid_z, grid_y = fixed_grid_inputs(cfg, num_classes, seed)
    return _Loop(cfg=cfg, run_dir=run_dir, record=record, device=device, G=G, D=D, G_ema=G_ema,
                 opt_g=opt_g, opt_d=opt_d, gen=torch_generator(seed, "batches"), x_all=x_all,
                 y_all=y_all, diffaug=check_diffaug(cfg.diffaug), grid_z=grid_z, grid_y=grid_y,
                 acc=torch.zeros(len(STAT_ORDER), device=device))


def _restore(loop: _Loop, ckpt: dict[str, Any]) -> None:
    """Continue from a checkpoint: weights, optimisers, both RNG states, partial stats and history."""
    loop.G.load_state_dict(ckpt["G"])
    loop.D.load_state_dict(ckpt["D"])
    loop.G_ema.load_state_dict(ckpt["G_ema"])
    loop.opt_g.load_state_dict(ckpt["opt_G"])
    loop.opt_d.load_state_dict(ckpt["opt_D"])
    loop.gen.set_state(ckpt["rng"]["batches"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    loop.acc = ckpt["acc"].to(loop.device)
    loop.acc_n = int(ckpt["acc_n"])
    loop.rows = [list(r) for r in ckpt["history"]]
    loop.step = int(ckpt["step"])
    if loop.step > loop.cfg.steps:
        raise ConfigError(f"resume: steps={loop.cfg.steps} is below the step {loop.step} already saved in "
                          f"{loop.run_dir / CHECKPOINT_NAME}")


def _autocast(loop: _Loop) -> torch.autocast:
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=loop.use_cuda and loop.cfg.dtype == "float32")


def _draw(loop: _Loop, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Indices with replacement: fake labels follow the data's class prior, so the class
    # alone never tells D which images are fake.
    idx = torch.randint(loop.x_all.shape[0], (n,), generator=loop.gen)
    z = torch.randn(n, loop.cfg.latent_dim, generator=loop.gen)
    return idx.to(loop.device, non_blocking=loop.use_cuda), z.to(loop.device, non_blocking=loop.use_cuda)


def _train_step(loop: _Loop) -> None:
    """One G step: n_critic D updates, one G update, the EMA, and the step's stats."""
    fake, z, y_fake, d_stats = _d_steps(loop)
    g_stats = _g_step(loop, fake, z, y_fake)
    loop.step += 1
    ema_update(loop.G_ema, loop.G, loop.cfg.ema_decay, loop.step)  # ema_decay=0: G_ema is an exact copy of G
    loop.acc += torch.cat([d_stats, g_stats])
    loop.acc_n += 1


def _d_steps(loop: _Loop) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Update D n_critic times; return the last fake batch (with grad), its z and labels, and D's mean stats."""
    cfg = loop.cfg
    d_sum = torch.zeros(len(D_STATS), device=loop.device)
    for k in range(cfg.n_critic):
        idx, z = _draw(loop, cfg.batch_size)
        real, y = loop.x_all[idx], loop.y_all[idx]
        # Same-class pairs (first half / second half): the mode-seeking term compares them.
        # The fake labels follow the real batch's labels, so the class alone never tells D
        # which images are fake.
        y_fake = pair_labels(y)
        last = k == cfg.n_critic - 1
        # The last critic step's fake batch is generated with gradients and reused for G's
        # update (the DCGAN recipe): one G forward per step instead of two.
        with torch.set_grad_enabled(last), _autocast(loop):
            fake = loop.G(z, y_fake)
        with _autocast(loop):
            d_loss, d_stats = discriminator_loss(
                loop.D, diff_augment(real, loop.diffaug, loop.gen), y,
                diff_augment(upcast(fake.detach()), loop.diffaug, loop.gen), y_fake,
                cfg.label_smoothing, cfg.aux_weight, cfg.aux_fake_in_d,
            )
        loop.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        loop.opt_d.step()
        d_sum += d_stats
    return fake, z, y_fake, d_sum / cfg.n_critic


def _g_step(loop: _Loop, fake: torch.Tensor, z: torch.Tensor, y_fake: torch.Tensor) -> torch.Tensor:
    """Update G against the just-updated D; return its stats and the mode-seeking ratio."""
    cfg = loop.cfg
    with _autocast(loop):
        fake = upcast(fake)
        g_loss, g_stats = generator_loss(loop.D, diff_augment(fake, loop.diffaug, loop.gen), y_fake, cfg.aux_weight)
        ms_loss, ms_ratio = mode_seeking_loss(fake, z)
        if cfg.mode_seeking > 0:
            g_loss = g_loss + cfg.mode_seeking * ms_loss
    loop.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    loop.opt_g.step()
    return torch.cat([g_stats, ms_ratio.detach().reshape(1)])


def _write_outputs(loop: _Loop, bar: Any) -> None:
    """After a step: a history row every log_every steps, a grid every sample_every, a checkpoint."""
    cfg, step = loop.cfg, loop.step
    if step % cfg.log_every == 0 or step == cfg.steps:
        _log_row(loop, bar)
    if (cfg.sample_every and step % cfg.sample_every == 0) or step == cfg.steps:
        write_grid(loop.G_ema, cfg, loop.grid_z, loop.grid_y, loop.run_dir / SAMPLES_DIR / f"step_{step:06d}.png")
    if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
        _save_checkpoint(loop)


def _log_row(loop: _Loop, bar: Any) -> None:
    mean = (loop.acc / loop.acc_n).tolist()  # the only device sync of the loop
    by_name = dict(zip(STAT_ORDER, mean))
    loop.rows.append([loop.step, *(by_name[c] for c in HISTORY_COLUMNS)])
    loop.acc.zero_()
    loop.acc_n = 0
    bar.set_postfix(d=f"{by_name['d_loss']:.3f}", g=f"{by_name['g_loss']:.3f}",
                    aux_fake=f"{by_name['aux_acc_fake']:.2f}")


def _save_checkpoint(loop: _Loop) -> None:
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "step": int(loop.step),
        "G": loop.G.state_dict(),
        "D": loop.D.state_dict(),
        "G_ema": loop.G_ema.state_dict(),
        "opt_G": loop.opt_g.state_dict(),
        "opt_D": loop.opt_d.state_dict(),
        "rng": {"batches": loop.gen.get_state(), "torch": torch.get_rng_state()},
        "acc": loop.acc.detach().cpu().clone(),
        "acc_n": int(loop.acc_n),
        "history": [list(r) for r in loop.rows],
        "record": loop.record,
    }
    atomic_torch_save(ckpt, loop.run_dir / CHECKPOINT_NAME)
    write_history(loop.run_dir, loop.rows)
