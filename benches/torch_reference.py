"""PyTorch CPU reference numbers for ferrograd's benchmark workloads.

Measures, in float32 on the CPU:
  fmnist_cnn_train / fmnist_cnn_infer  small Fashion-MNIST CNN, batch 128
  conv2d / conv_transpose2d            fixed shapes, forward and forward+backward
  matmul                               square 512 and 2048
  op_overhead                          per-op cost of a 20,000-op scalar chain
  hvp                                  Hessian-vector product through the CNN
  deepfake_train                       one face-swap step (ferrograd's FaceSwap), 16+16 faces
  peak_rss                             process peak RSS after 100 training steps

Every timing is the median over several repetitions after a warm-up.
Output is one JSON object per line on stdout, starting with a "meta" line.

Usage:
    /work/venv/bin/python benches/torch_reference.py [--quick] [--threads N]

--quick uses fewer repetitions (well under 3 minutes on 2 cores);
--threads defaults to os.cpu_count().
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 128
NUM_CLASSES = 10

CONV2D_SHAPES = [
    # N, C, H, W, K, R, S, stride, pad
    (128, 32, 14, 14, 64, 3, 3, 1, 1),
    (64, 3, 100, 100, 64, 5, 5, 2, 2),
    (32, 128, 25, 25, 256, 5, 5, 2, 2),
]

CONV_TRANSPOSE2D_SHAPES = [
    # N, C, H, W, K, R, S, stride, pad
    (64, 128, 8, 8, 64, 4, 4, 2, 1),
    (32, 256, 13, 13, 128, 4, 4, 2, 1),
]

MATMUL_SIZES = [512, 2048]

OP_CHAIN_LINES = 10_000
OP_CHAIN_OPS = 2 * OP_CHAIN_LINES  # each line is one mul and one add

PEAK_RSS_STEPS = 100


def emit(obj):
    print(json.dumps(obj, separators=(",", ":")), flush=True)


def median_ms(fn, warmup, reps):
    """Run fn `warmup` times untimed, then `reps` times; return median ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


# --------------------------------------------------------------------------
# Fashion-MNIST CNN
# --------------------------------------------------------------------------


def make_cnn():
    """Returns (trunk, head): trunk ends at the second ReLU (before pool 2)."""
    trunk = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
    )
    head = nn.Sequential(
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, NUM_CLASSES),
    )
    return trunk, head


def make_training_setup():
    torch.manual_seed(0)
    trunk, head = make_cnn()
    model = nn.Sequential(trunk, head)
    x = torch.randn(BATCH, 1, 28, 28)
    labels = torch.randint(0, NUM_CLASSES, (BATCH,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()

    return model, x, step


def bench_cnn(reps):
    model, x, step = make_training_setup()

    ms = median_ms(step, warmup=3, reps=reps)
    emit({"name": "fmnist_cnn_train", "images_per_s": BATCH / (ms / 1e3), "ms": ms})

    def infer():
        with torch.no_grad():
            model(x)

    ms = median_ms(infer, warmup=3, reps=reps)
    emit({"name": "fmnist_cnn_infer", "images_per_s": BATCH / (ms / 1e3), "ms": ms})


# --------------------------------------------------------------------------
# Convolutions
# --------------------------------------------------------------------------


def bench_conv(name, shape, x_shape, w_shape, conv, flops, reps):
    """Times `conv(x, w)` forward and forward+backward (grads for x and w)."""
    torch.manual_seed(0)
    x = torch.randn(x_shape)
    w = torch.randn(w_shape)

    def fwd():
        with torch.no_grad():
            conv(x, w)

    xg = x.clone().requires_grad_(True)
    wg = w.clone().requires_grad_(True)
    with torch.no_grad():
        g = torch.randn_like(conv(x, w))

    def fwd_bwd():
        xg.grad = None
        wg.grad = None
        conv(xg, wg).backward(g)

    for pass_name, fn in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
        ms = median_ms(fn, warmup=2, reps=reps)
        emit({
            "name": name,
            "shape": list(shape),
            "pass": pass_name,
            "ms": ms,
            # The forward flop count is used for both passes.
            "gflops": flops / (ms / 1e3) / 1e9,
        })


def bench_conv2d(reps):
    for shape in CONV2D_SHAPES:
        n, c, h, w, k, r, s, stride, pad = shape
        p = (h + 2 * pad - r) // stride + 1
        q = (w + 2 * pad - s) // stride + 1
        flops = 2 * n * k * c * r * s * p * q

        def conv(x, wt, stride=stride, pad=pad):
            return F.conv2d(x, wt, stride=stride, padding=pad)

        bench_conv("conv2d", shape, (n, c, h, w), (k, c, r, s), conv, flops, reps)


def bench_conv_transpose2d(reps):
    for shape in CONV_TRANSPOSE2D_SHAPES:
        n, c, h, w, k, r, s, stride, pad = shape
        flops = 2 * n * c * k * r * s * h * w  # each input pixel times each weight

        def conv(x, wt, stride=stride, pad=pad):
            return F.conv_transpose2d(x, wt, stride=stride, padding=pad)

        # PyTorch's transposed-conv weight layout is [C_in, C_out, R, S].
        bench_conv("conv_transpose2d", shape, (n, c, h, w), (c, k, r, s), conv,
                   flops, reps)


# --------------------------------------------------------------------------
# Matmul
# --------------------------------------------------------------------------


def bench_matmul(reps):
    for size in MATMUL_SIZES:
        torch.manual_seed(0)
        a = torch.randn(size, size)
        b = torch.randn(size, size)
        ms = median_ms(lambda: torch.mm(a, b), warmup=2, reps=reps)
        flops = 2 * size * size * size
        emit({
            "name": "matmul",
            "shape": [size, size, size],
            "ms": ms,
            "gflops": flops / (ms / 1e3) / 1e9,
        })


# --------------------------------------------------------------------------
# Per-op overhead
# --------------------------------------------------------------------------


def bench_op_overhead(reps):
    def run_once():
        x = torch.ones(1, requires_grad=True)
        t0 = time.perf_counter()
        y = x
        for _ in range(OP_CHAIN_LINES):
            y = y * 1.0001 + 0.5
        t1 = time.perf_counter()
        y.backward()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    run_once()  # warm-up
    fwd, bwd = zip(*(run_once() for _ in range(reps)))
    emit({
        "name": "op_overhead",
        "us_per_op_fwd": statistics.median(fwd) / OP_CHAIN_OPS * 1e6,
        "us_per_op_bwd": statistics.median(bwd) / OP_CHAIN_OPS * 1e6,
    })


# --------------------------------------------------------------------------
# Hessian-vector product
# --------------------------------------------------------------------------


def bench_hvp(reps):
    torch.manual_seed(0)
    trunk, head = make_cnn()
    trunk.eval()
    head.eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        v = torch.randn_like(trunk(x))

    def hvp():
        act = trunk(x)  # second ReLU's output, before the second max-pool
        logit = head(act)[0, 0]
        (g,) = torch.autograd.grad(logit, act, create_graph=True)
        # With ReLU and max-pool downstream the HVP is mathematically zero,
        # but it is still computed through the graph; None means zero.
        (hv,) = torch.autograd.grad((g * v).sum(), act, allow_unused=True)
        return torch.zeros_like(act) if hv is None else hv

    ms = median_ms(hvp, warmup=3, reps=reps)
    emit({"name": "hvp", "ms": ms})


# --------------------------------------------------------------------------
# Peak RSS
# --------------------------------------------------------------------------


def bench_peak_rss():
    _, _, step = make_training_setup()
    for _ in range(PEAK_RSS_STEPS):
        step()
    # Whole-process peak (it includes every earlier benchmark too); Linux
    # reports ru_maxrss in KiB.
    mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit({"name": "peak_rss", "mib": mib})


# --------------------------------------------------------------------------
# Face swap: the architecture of ferrograd's deepfake/src/model.rs
# --------------------------------------------------------------------------


def make_face_swap(latent=256):
    def down(i, o):
        return [nn.Conv2d(i, o, 3, stride=2, padding=1), nn.LeakyReLU(0.1)]

    encoder = nn.Sequential(*down(3, 32), *down(32, 64), *down(64, 128),
                            *down(128, 256), nn.Flatten(),
                            nn.Linear(256 * 7 * 7, latent))

    def decoder():
        return nn.Sequential(
            nn.Linear(latent, 128 * 7 * 7), nn.LeakyReLU(0.1),
            nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 128, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1))

    disc = nn.Sequential(nn.Linear(latent, 256), nn.LeakyReLU(0.2),
                         nn.Linear(256, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
    return encoder, decoder(), decoder(), disc


def bench_deepfake(reps, per_identity=16, latent=256, weight=0.01):
    torch.manual_seed(0)
    enc, dec_a, dec_b, disc = make_face_swap(latent)
    opt_ae = torch.optim.Adam([*enc.parameters(), *dec_a.parameters(),
                               *dec_b.parameters()], lr=5e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=5e-4, betas=(0.5, 0.999))
    a = torch.rand(per_identity, 3, 100, 100)
    b = torch.rand(per_identity, 3, 100, 100)
    bce = F.binary_cross_entropy_with_logits

    def step():
        codes = enc(torch.cat([a, b]))
        prior = torch.randn_like(codes)
        real, fake = disc(prior), disc(codes.detach())
        d_loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        fool = disc(codes)
        fool = bce(fool, torch.ones_like(fool))
        recon = (torch.sigmoid(dec_a(codes[:per_identity])) - a).abs().mean() \
            + (torch.sigmoid(dec_b(codes[per_identity:])) - b).abs().mean()
        loss = 0.5 * recon + weight * fool
        opt_ae.zero_grad()
        loss.backward()
        opt_ae.step()

    ms = median_ms(step, warmup=2, reps=reps)
    emit({"name": "deepfake_train", "batch": 2 * per_identity,
          "images_per_s": 2 * per_identity / (ms / 1e3), "ms": ms})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (well under 3 minutes)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra-op threads (default: os.cpu_count())")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    # The 1-minute load average at start flags runs disturbed by other work.
    emit({"name": "meta", "engine": "pytorch", "version": torch.__version__,
          "threads": args.threads, "loadavg_1m": os.getloadavg()[0]})

    quick = args.quick
    bench_cnn(reps=10 if quick else 50)
    bench_conv2d(reps=5 if quick else 30)
    bench_conv_transpose2d(reps=5 if quick else 30)
    bench_matmul(reps=5 if quick else 30)
    bench_op_overhead(reps=3 if quick else 11)
    bench_hvp(reps=10 if quick else 100)
    bench_deepfake(reps=3 if quick else 11)
    bench_peak_rss()  # last, so the peak reflects the training run


if __name__ == "__main__":
    main()
