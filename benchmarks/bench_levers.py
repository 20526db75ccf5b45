"""Which performance levers pay on this CPU: one training step of each network, variant by variant.

    python benchmarks/bench_levers.py [--quick] [--only vgg|acgan|infer]

Each variant is a full optimisation step (forward, backward, Adam) at the default profile's
sizes on a fixed in-memory batch, timed over several steps after warm-up; variants are
interleaved round-robin and the best round is kept, so background load hits all alike.
VGG-16 variants mirror `hipaug.training.train_classifier`'s step; AC-GAN variants mirror
`hipaug.training.gan.train_acgan`'s step (D step on a separately generated fake batch, then G step,
EMA update) against the public recipe's single G forward per step. `torch.compile` rows report
the one-off compile time separately.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time

# A fresh inductor cache, so the torch.compile rows report the compile time a user pays once.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="hipaug-inductor-"))

import bench_common as bc  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def _time_steps(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def run_variants(variants: dict, n_steps: int, rounds: int, warmup: int = 2) -> dict:
    """variants: name -> (setup() -> (step, extra dict)); returns name -> {seconds, extra}."""
    steps, extras = {}, {}
    for name, setup in variants.items():
        t0 = time.perf_counter()
        step, extra = setup()
        for _ in range(warmup):
            step()
        extra = dict(extra)
        extra.setdefault("setup_s", time.perf_counter() - t0)
        steps[name], extras[name] = step, extra
        print(f"[bench] set up {name} ({extra['setup_s']:.1f}s)", file=sys.stderr, flush=True)
    best = {k: float("inf") for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            best[name] = min(best[name], _time_steps(step, n_steps))
    return {k: {"seconds": best[k], **extras[k]} for k in steps}


# ----------------------------------------------------------------------------- VGG-16

def _compile_time(step, compiled: bool) -> dict:
    """Run the first step of a torch.compile'd variant (it compiles) and return how long it took."""
    if not compiled:
        return {}
    t0 = time.perf_counter()
    step()
    return {"compile_s": time.perf_counter() - t0}


def vgg_variants(prof, C: int = 8) -> tuple[dict, float]:
    from hipaug.models.vgg import vgg16

    a, S, B = prof.arch, prof.image_size, prof.pretrain.batch_size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, 1, S, S, generator=g)
    y = torch.randint(0, C, (B,), generator=g)

    def model():
        return vgg16(C, width=a.width, fc_width=a.fc_width, image_size=S, batch_norm=a.batch_norm,
                     pretrained="never", dropout=a.dropout, seed=0)

    def make(opt_kw=None, channels_last=False, item=False, compile_=False, threads=None, det=False,
             zero_grad_none=True):
        def setup():
            m = model()
            if channels_last:
                m = m.to(memory_format=torch.channels_last)
            xb = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            opt = torch.optim.Adam(m.parameters(), lr=1e-3, **(opt_kw or {"foreach": True}))
            fwd = torch.compile(m) if compile_ else m
            m.train()

            def step():
                if torch.get_num_threads() != (threads or 2):
                    torch.set_num_threads(threads or 2)
                torch.use_deterministic_algorithms(det, warn_only=True)
                logits = fwd(xb)
                losses = F.cross_entropy(logits, y, reduction="none")
                loss = losses.sum() / len(y)
                opt.zero_grad(set_to_none=zero_grad_none)
                loss.backward()
                opt.step()
                if item:
                    loss.item()
                    (logits.detach().argmax(1) == y).sum().item()

            return step, _compile_time(step, compile_)
        return setup

    variants = {
        "NCHW, Adam foreach (hipaug before)": make(),
        "NCHW, Adam for-loop (torch CPU default)": make({"foreach": False}),
        "NCHW, Adam fused": make({"fused": True}),
        "NCHW, .item() every step": make(item=True),
        "NCHW, deterministic algorithms on": make(det=True),
        "NCHW, 1 thread": make(threads=1),
        "NCHW, torch.compile": make(compile_=True),
        "channels_last, Adam foreach": make(channels_last=True),
        "channels_last, Adam fused (hipaug now)": make({"fused": True}, channels_last=True),
        "channels_last, torch.compile": make(channels_last=True, compile_=True),
    }
    m = model()
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(m(x), y).backward()
    return variants, fc.get_total_flops()


# ----------------------------------------------------------------------------- inference

def infer_variants(prof, C: int = 8, n: int = 1024) -> tuple[dict, float]:
    from hipaug.models.vgg import vgg16
    from hipaug.training import predict_proba

    a, S = prof.arch, prof.image_size
    m = vgg16(C, width=a.width, fc_width=a.fc_width, image_size=S, batch_norm=a.batch_norm, pretrained="never",
              dropout=a.dropout, seed=0).eval()
    x = torch.rand(n, 1, S, S, generator=torch.Generator().manual_seed(0))

    def hipaug(bs):
        return lambda: (lambda: predict_proba(m, x, batch_size=bs), {})

    def plain(ctx, bs, cl=False):
        def setup():
            mm = copy.deepcopy(m)
            xx = x
            if cl:
                mm = mm.to(memory_format=torch.channels_last)
                xx = x.contiguous(memory_format=torch.channels_last)

            def run():
                with ctx():
                    return torch.cat([torch.softmax(mm(xx[i:i + bs]), 1) for i in range(0, n, bs)])
            return run, {}
        return setup

    def compiled(bs):
        def setup():
            mm = torch.compile(copy.deepcopy(m))

            def run():
                with torch.inference_mode():
                    return torch.cat([torch.softmax(mm(x[i:i + bs]), 1) for i in range(0, n, bs)])
            return run, _compile_time(run, True)
        return setup

    variants = {
        "NCHW, inference_mode, batch 256 (hipaug before)": plain(torch.inference_mode, 256),
        "NCHW, no_grad, batch 256": plain(torch.no_grad, 256),
        "NCHW, grad enabled, batch 256": plain(torch.enable_grad, 256),
        "NCHW, inference_mode + torch.compile, batch 256": compiled(256),
        "NCHW, inference_mode, batch 64": plain(torch.inference_mode, 64),
        "channels_last, inference_mode, batch 256": plain(torch.inference_mode, 256, cl=True),
        "channels_last, inference_mode, batch 64": plain(torch.inference_mode, 64, cl=True),
        "predict_proba batch 256 (hipaug now: channels_last, cache-sized chunks)": hipaug(256),
        "predict_proba batch 1024 (same chunks)": hipaug(1024),
    }
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x[:1])
    return variants, fc.get_total_flops()


# ----------------------------------------------------------------------------- AC-GAN

def acgan_variants(prof, C: int = 8) -> tuple[dict, dict]:
    from hipaug.models.acgan import build_models
    from hipaug.training import discriminator_loss, generator_loss
    from hipaug.training.gan.ema import ema_update

    cfg = prof.acgan
    B, S, L = cfg.batch_size, cfg.image_size, cfg.latent_dim
    g = torch.Generator().manual_seed(0)
    real = torch.rand(B, 1, S, S, generator=g) * 2 - 1
    yr = torch.randint(0, C, (B,), generator=g)

    import hipaug.training.gan.losses as A

    pair = getattr(A, "pair_labels", lambda y: y)  # same-class pairs for the mode-seeking term
    ms_weight = float(getattr(cfg, "mode_seeking", 0.0))

    def make(reuse_fake=False, ema=True, channels_last=False, compile_=False, det=True, stats=True, fill=True,
             fused=False):
        def setup():
            torch.manual_seed(0)
            G, D = build_models(cfg, C)
            G_ema = copy.deepcopy(G).requires_grad_(False)
            r = real
            if channels_last:
                G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
                r = real.contiguous(memory_format=torch.channels_last)
            impl = {"fused": True} if fused else {"foreach": True}
            opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas, **impl)
            opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas, **impl)
            Gf, Df = (torch.compile(G), torch.compile(D)) if compile_ else (G, D)
            acc = torch.zeros(16)
            it = [0]

            def g_step(fake, z, y):
                g_loss, g_st = generator_loss(Df, fake, y, cfg.aux_weight)
                if ms_weight > 0:
                    ms, _ratio = A.mode_seeking_loss(fake, z)
                    g_loss = g_loss + ms_weight * ms
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                return g_st

            def step():
                # train_acgan calls hipaug.core.deterministic(): deterministic algorithms, and torch then
                # also fills every new tensor (fill_uninitialized_memory, on by default).
                torch.use_deterministic_algorithms(det, warn_only=True)
                torch.utils.deterministic.fill_uninitialized_memory = fill
                z = torch.randn(B, L)
                if reuse_fake:
                    # One G forward with grad: D learns on it detached, then G's loss reuses it
                    # (the DCGAN / public AC-GAN recipe), with the mode-seeking pairs.
                    y2 = pair(yr)
                    fake = Gf(z, y2)
                    d_loss, d_st = discriminator_loss(Df, r, yr, fake.detach(), y2, cfg.label_smoothing,
                                                      cfg.aux_weight, cfg.aux_fake_in_d)
                    opt_d.zero_grad(set_to_none=True)
                    d_loss.backward()
                    opt_d.step()
                    g_st = g_step(fake, z, y2)
                else:  # hipaug's loop: a fresh no-grad fake batch for D, another forward for G
                    with torch.no_grad():
                        fake_d = Gf(z, yr)
                    d_loss, d_st = discriminator_loss(Df, r, yr, fake_d, yr, cfg.label_smoothing, cfg.aux_weight,
                                                      cfg.aux_fake_in_d)
                    opt_d.zero_grad(set_to_none=True)
                    d_loss.backward()
                    opt_d.step()
                    z2 = torch.randn(B, L)
                    y2 = pair(yr)
                    g_st = g_step(Gf(z2, y2), z2, y2)
                it[0] += 1
                if ema:
                    ema_update(G_ema, G, cfg.ema_decay, it[0])
                if stats:
                    acc[:len(d_st) + len(g_st)].add_(torch.cat([d_st, g_st]))

            return step, _compile_time(step, compile_)
        return setup

    def plain():
        from plain_loops import acgan_plain_step_fn

        torch.use_deterministic_algorithms(False)
        torch.manual_seed(0)
        G, D = build_models(cfg, C)
        step = acgan_plain_step_fn(G, D, B, L, C, S, cfg.lr_g, cfg.betas)
        return step, {}

    def plain_step():
        def setup():
            step, extra = plain()

            def wrapped():
                torch.use_deterministic_algorithms(False)
                torch.utils.deterministic.fill_uninitialized_memory = True
                step()
            return wrapped, extra
        return setup

    variants = {
        "2 G forwards, NCHW, Adam foreach (hipaug before)": make(),
        "deterministic, fill_uninitialized_memory off": make(fill=False),
        "deterministic algorithms off": make(det=False),
        "Adam fused": make(fused=True),
        "reuse the fake batch (1 G forward)": make(reuse_fake=True),
        "reuse fake + fused Adam + fill off": make(reuse_fake=True, fill=False, fused=True),
        "reuse fake, no EMA, no stats": make(reuse_fake=True, ema=False, stats=False),
        "channels_last": make(channels_last=True),
        "reuse fake + channels_last": make(reuse_fake=True, channels_last=True),
        "reuse fake + channels_last + fill off + fused Adam (hipaug now)": make(
            reuse_fake=True, channels_last=True, fill=False, fused=True),
        "torch.compile G and D": make(compile_=True),
        "plain recipe step (1 G forward, .item())": plain_step(),
    }
    from torch.utils.flop_counter import FlopCounterMode
    fl = {}
    for key, setup in (("hipaug", make()), ("reuse", make(reuse_fake=True)), ("plain", plain)):
        step, _ = setup()
        with FlopCounterMode(display=False) as fc:
            step()
        fl[key] = fc.get_total_flops()
    torch.use_deterministic_algorithms(False)
    torch.utils.deterministic.fill_uninitialized_memory = True
    return variants, fl


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    ap.add_argument("--only", choices=("vgg", "acgan", "infer"), nargs="*", default=None)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    a = ap.parse_args(argv)
    from bench_machine import reference_gflops
    from hipaug.config import load_profile

    prof = load_profile("default", device="cpu")
    only = set(a.only or ("vgg", "infer", "acgan"))
    # Single steps, interleaved round-robin, best round kept: robust to other jobs on a shared box.
    n_steps, rounds = (1, 4) if a.quick else (1, 12)
    recs = []
    la = bc.wait_for_quiet(a.max_wait)
    ref = reference_gflops(results_dir=a.results)
    ref_note = bc.utilisation_note(ref)

    def drop_compile(v):
        return {k: s for k, s in v.items() if not (a.no_compile and "compile" in k)}

    if "vgg" in only:
        variants, fl = vgg_variants(prof)
        res = run_variants(drop_compile(variants), n_steps, rounds)
        base = res["NCHW, Adam foreach (hipaug before)"]["seconds"]
        B = prof.pretrain.batch_size
        rows = [{"variant": k, "ms/step": r["seconds"] * 1e3, "images/s": B / r["seconds"],
                 "GFLOP/s": fl / r["seconds"] / 1e9, "utilization": fl / r["seconds"] / 1e9 / ref,
                 "speedup": base / r["seconds"], "compile s": r.get("compile_s")} for k, r in res.items()]
        torch.set_num_threads(2)
        recs.append(bc.record("levers_vgg", "Levers: VGG-16 training step (default profile)", rows,
                              f"One step at width {prof.arch.width}, fc {prof.arch.fc_width}, {prof.image_size} px, "
                              f"batch {B} ({fl / 1e9:.2f} GFLOP forward+backward); best of {rounds} rounds of "
                              f"{n_steps} steps. Speedup is relative to the step before this change (NCHW). {ref_note}",
                              load=la, results_dir=a.results))
    if "infer" in only:
        torch.use_deterministic_algorithms(False)
        variants, fl = infer_variants(prof)
        res = run_variants(drop_compile(variants), 1, max(2, rounds // 3), warmup=1)
        base = res["NCHW, inference_mode, batch 256 (hipaug before)"]["seconds"]
        rows = [{"variant": k, "images/s": 1024 / r["seconds"], "GFLOP/s": 1024 * fl / r["seconds"] / 1e9,
                 "utilization": 1024 * fl / r["seconds"] / 1e9 / ref, "speedup": base / r["seconds"],
                 "compile s": r.get("compile_s")} for k, r in res.items()]
        recs.append(bc.record("levers_inference", "Levers: VGG-16 inference (the realism filter)", rows,
                              f"1024 images at {prof.image_size} px through the default VGG-16 ({fl / 1e6:.1f} MFLOP per "
                              f"image forward); best of {rounds}. {ref_note}", load=la, results_dir=a.results))
    if "acgan" in only:
        variants, fl = acgan_variants(prof)
        res = run_variants(drop_compile(variants), n_steps, rounds)
        base = res["2 G forwards, NCHW, Adam foreach (hipaug before)"]["seconds"]
        B = prof.acgan.batch_size
        rows = []
        for k, r in res.items():
            f = fl["reuse"] if "reuse" in k else fl["plain"] if "plain" in k else fl["hipaug"]
            rows.append({"variant": k, "ms/step": r["seconds"] * 1e3, "images/s": B / r["seconds"],
                         "GFLOP/step": f / 1e9, "GFLOP/s": f / r["seconds"] / 1e9,
                         "utilization": f / r["seconds"] / 1e9 / ref, "speedup": base / r["seconds"],
                         "compile s": r.get("compile_s")})
        recs.append(bc.record("levers_acgan", "Levers: AC-GAN training step (default profile)", rows,
                              f"One step at {prof.image_size} px, g/d width {prof.acgan.g_width}/{prof.acgan.d_width}, "
                              f"batch {B}; best of {rounds} rounds. Speedup relative to hipaug's step before this work (2 G forwards, NCHW, Adam foreach, EMA, deterministic). "
                              f"{ref_note}", load=la, results_dir=a.results))
    return recs


if __name__ == "__main__":
    main()
