"""PyTorch CPU reference numbers for ferrograd's benchmark workloads.

Measures, in float32 on the CPU:
  fmnist_cnn_train / fmnist_cnn_infer  small Fashion-MNIST CNN, batch 128
  conv2d / conv_transpose2d            fixed shapes, forward and forward+backward
  matmul                               square 512 and 2048
  op_overhead                          per-op cost of a 20,000-op scalar chain
  hvp                                  Hessian-vector product through the CNN
  deepfake_train                       one face-swap step (ferrograd's FaceSwap), 16+16 faces
  course: classifier_train / classifier_infer / vae_train / gan_train / aae_train
                                       one training step of each of the course's models with
                                       `ferrograd train`'s defaults, batch 128 (twins of
                                       models/src/classifier.rs and generative.rs), and the
                                       classifier's logits in evaluation mode
  cam_exact                            the exact Grad-CAM++ of one image at conv1/conv2/conv3
                                       (cam/src/exact.rs's perturbation batches), once each
  peak_rss                             process peak RSS after 100 training steps

Every timing is the median over several repetitions after a warm-up (cam_exact: one run).
Output is one JSON object per line on stdout, starting with a "meta" line.

Usage:
    /work/venv/bin/python benches/torch_reference.py [--quick] [--threads N]
        [--only GROUP,GROUP] [--cam-layers conv1,conv2,conv3|all]

--quick uses fewer repetitions (well under 3 minutes on 2 cores, without cam_exact at conv1);
--threads defaults to os.cpu_count();
--only runs the named groups (fmnist_cnn, conv, matmul, op_overhead, hvp, deepfake, course,
  cam_exact, peak_rss; as in `cargo bench -- GROUP`, a group's full name selects it alone and
  any other name the groups it begins);
--cam-layers picks cam_exact's layers (default: all three; conv3 alone with --quick). conv1 is
  by far the slowest: leave it out to skip it.
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

# The groups --only selects, as `cargo bench -- GROUP` selects them in benches/reference.rs
# (which also has `cam`, the other CAM methods, with no twin here).
GROUPS = ("fmnist_cnn", "conv", "matmul", "op_overhead", "hvp", "cam_exact", "deepfake",
          "course", "peak_rss")
# Groups of reference.rs with no twin here: named in --only, they select nothing (so `cam`
# does not select cam_exact, as in `cargo bench -- cam`).
UNTWINNED = ("cam",)


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


# --------------------------------------------------------------------------
# The course's models: twins of models/src/classifier.rs and generative.rs with
# `ferrograd train`'s defaults (models/src/train.rs, TrainConfig::defaults)
# --------------------------------------------------------------------------

COURSE_BATCH = 128
PIXELS = 28 * 28
CLASSIFIER_CHANNELS = (32, 64, 128)


class CourseClassifier(nn.Module):
    """models/src/classifier.rs with ReLU: three blocks of [Conv3x3(pad 1)-BatchNorm-ReLU] x 2
    (32-64-128 channels, conv weights Kaiming-normal N(0, 2/fan_in), biases PyTorch's default),
    2x2 max-pooling after blocks 1 and 2, GAP + Linear(128->10) head, and the decoder
    ConvT(128->32, 2, s2)-ReLU-ConvT(32->1, 4, s2, p1) from conv3's maps to image logits."""

    def __init__(self):
        super().__init__()
        blocks, inputs = [], 1
        for c in CLASSIFIER_CHANNELS:
            layers = []
            for _ in range(2):
                conv = nn.Conv2d(inputs, c, 3, padding=1)
                nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
                layers += [conv, nn.BatchNorm2d(c), nn.ReLU()]
                inputs = c
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(CLASSIFIER_CHANNELS[2], NUM_CLASSES)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(CLASSIFIER_CHANNELS[2], 32, 2, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1))

    def activations(self, x):
        maps, h = [], x
        for i, block in enumerate(self.blocks):
            a = block(h)
            h = F.max_pool2d(a, 2, 2) if i < 2 else a
            maps.append(a)
        return maps

    def logits_from(self, layer, a):
        """Logits from block `layer`'s activation map on (what the CAM methods differentiate)."""
        h = a
        for i in range(layer, 3):
            if i > layer:
                h = self.blocks[i](h)
            if i < 2:
                h = F.max_pool2d(h, 2, 2)
        return self.head(h.mean((2, 3)))

    def logits(self, x):
        return self.head(self.activations(x)[2].mean((2, 3)))

    def forward(self, x):
        a3 = self.activations(x)[2]
        return self.head(a3.mean((2, 3))), self.decoder(a3)

    def penalised_weights(self):
        """The weights (not biases, not batch-norm scales) that lambda*||W||_F^2 penalises."""
        return [p for n, p in self.named_parameters() if n.endswith("weight") and p.dim() >= 2]


def frobenius_penalty(weights):
    total = torch.zeros(())
    for w in weights:
        total = total + (w * w).sum()
    return total


def bce_per_image(logits, x):
    """BCE summed over pixels, averaged over the batch (generative.rs's bce_per_image)."""
    return F.binary_cross_entropy_with_logits(logits, x) * PIXELS


def discriminator_loss(real_logits, fake_logits):
    """-E[log D(real)] - E[log(1 - D(fake))] on logits (nn/src/loss.rs)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_non_saturating(fake_logits):
    """-E[log D(G(z))] = E[softplus(-s)]."""
    return F.softplus(-fake_logits).mean()


def conv_encoder(outputs):
    """Conv(1->32, 4, s2, p1)-ReLU -> Conv(32->64, 4, s2, p1)-ReLU -> Flatten -> Linear(3136->outputs)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, outputs))


def conv_decoder(inputs):
    """Linear(inputs->3136)-ReLU -> [64, 7, 7] -> ConvT(64->32, 4, s2, p1)-ReLU -> ConvT(32->1, 4, s2, p1)."""
    return nn.Sequential(
        nn.Linear(inputs, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1))


def course_batch(n=COURSE_BATCH):
    return torch.rand(n, 1, 28, 28), torch.randint(0, NUM_CLASSES, (n,))


def make_classifier_step(beta=0.1, lam=1e-5, lr=1e-3):
    """Classifier.train_step: CE + beta*BCE(decoder logits, x) + lambda*sum ||W||_F^2, one Adam
    step; the losses and the batch accuracy read back as the Rust step returns them."""
    model = CourseClassifier()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    weights = model.penalised_weights()

    def step(x, labels):
        logits, recon_logits = model(x)
        ce = F.cross_entropy(logits, labels)
        recon = F.binary_cross_entropy_with_logits(recon_logits, x)
        total = ce + beta * recon + lam * frobenius_penalty(weights)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        parts = (total.item(), ce.item(), recon.item(), accuracy)
        opt.zero_grad()
        total.backward()
        opt.step()
        return parts

    return model, step


def make_vae_step(latent=16, lam=1.0, lr=1e-3):
    """Vae.train_step: z = mu + exp(log_var/2)*eps, loss BCE per image + lambda*KL(N(mu, sigma^2) || N(0, I))."""
    encoder, decoder = conv_encoder(2 * latent), conv_decoder(latent)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)

    def step(x, _labels):
        h = encoder(x)
        mu, log_var = h[:, :latent], h[:, latent:]
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        recon = bce_per_image(decoder(z), x)
        kl = (1 + log_var - mu * mu - log_var.exp()).sum() * (-0.5 / x.shape[0])
        total = recon + lam * kl
        opt.zero_grad()
        total.backward()
        opt.step()
        return total.item(), recon.item(), kl.item()

    return step


def make_gan_step(latent=64, lr=2e-4):
    """Gan.train_step (DCGAN recipe: weights N(0, 0.02), Adam beta1 = 0.5): one discriminator
    step on real x and detached G(z), then one generator step with the non-saturating loss
    through the updated discriminator; the discriminator's gradients from it are discarded."""
    generator = nn.Sequential(
        nn.Linear(latent, 64 * 7 * 7), nn.BatchNorm1d(64 * 7 * 7), nn.ReLU(),
        nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Sigmoid())
    discriminator = nn.Sequential(
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 1))
    for m in [*generator, *discriminator]:
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)  # biases keep PyTorch's default, as in Rust
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))

    def step(x, _labels):
        z = torch.randn(x.shape[0], latent)
        fake = generator(z)
        d_loss = discriminator_loss(discriminator(x), discriminator(fake.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss_non_saturating(discriminator(fake))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        d, g = d_loss.item(), g_loss.item()
        return d + g, d, g

    return step


def make_aae_step(latent=8, lam=10.0, lr=1e-3):
    """Aae.train_step with the N(0, I) prior: a discriminator step (prior samples real, detached
    codes generated), then one autoencoder step on BCE per image + lambda * the codes'
    non-saturating loss through the updated discriminator."""
    encoder, decoder = conv_encoder(latent), conv_decoder(latent)
    discriminator = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                  nn.Linear(64, 1))
    opt_ae = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))

    def step(x, _labels):
        codes = encoder(x)
        prior = torch.randn(x.shape[0], latent)
        d_loss = discriminator_loss(discriminator(prior), discriminator(codes.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        recon = bce_per_image(decoder(codes), x)
        adversarial = generator_loss_non_saturating(discriminator(codes))
        total = recon + lam * adversarial
        opt_ae.zero_grad()
        total.backward()
        opt_ae.step()
        opt_d.zero_grad()
        return total.item(), recon.item(), d_loss.item(), adversarial.item()

    return step


def emit_rate(name, batch, ms):
    emit({"name": name, "batch": batch, "images_per_s": batch / (ms / 1e3), "ms": ms})


def bench_course(reps):
    torch.manual_seed(0)
    x, labels = course_batch()
    classifier, step = make_classifier_step()
    emit_rate("classifier_train", COURSE_BATCH,
              median_ms(lambda: step(x, labels), warmup=2, reps=reps))

    classifier.eval()

    def infer():
        with torch.no_grad():
            classifier.logits(x)

    emit_rate("classifier_infer", COURSE_BATCH, median_ms(infer, warmup=2, reps=reps))
    for name, make in (("vae_train", make_vae_step), ("gan_train", make_gan_step),
                       ("aae_train", make_aae_step)):
        torch.manual_seed(0)
        step = make()
        emit_rate(name, COURSE_BATCH, median_ms(lambda: step(x, labels), warmup=2, reps=reps))


# --------------------------------------------------------------------------
# Exact Grad-CAM++: the twin of cam/src/exact.rs and cam/src/maps.rs
# --------------------------------------------------------------------------

CAM_LAYERS = ("conv1", "conv2", "conv3")
EXACT_CHUNK = 256  # cam/src/maps.rs
CAM_CLASS = 7


def exact_diagonal(score, a, elements, chunk=EXACT_CHUNK):
    """d1, d2, d3 = the diagonals of the score's first three derivatives at the map a [1, ...],
    for the listed flat elements (0 elsewhere). Copy b of a chunk is a + t_b * e_{i_b}; the sum
    of the scores, differentiated three times with respect to t (the first two sweeps
    recording their graphs), gives each copy's diagonal entry."""
    base = a.detach()
    n = base.numel()
    out = [torch.zeros(n, dtype=torch.float64) for _ in range(3)]
    for start in range(0, len(elements), chunk):
        batch = elements[start:start + chunk]
        b = len(batch)
        shape = (b, *base.shape[1:])
        positions = torch.arange(b) * n + batch
        t = torch.zeros(b, dtype=base.dtype, requires_grad=True)
        delta = torch.zeros(b * n, dtype=base.dtype).index_add(0, positions, t).view(shape)
        copies = base.expand(shape) + delta
        y = score(copies)
        (d1,) = torch.autograd.grad(y.sum(), t, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), t, create_graph=True)
        (d3,) = torch.autograd.grad(d2.sum(), t)
        for o, d in zip(out, (d1, d2, d3)):
            o[batch] = d.detach().double()
    return out


def pooling_winners(layer, a):
    """Flat indices of the elements that reach their 2x2 max-pooling window's output (all of
    them at conv3, which is not pooled); the others have every derivative exactly 0."""
    if layer == 2:
        return torch.arange(a.numel())
    a = a.detach().requires_grad_()
    (routed,) = torch.autograd.grad(F.max_pool2d(a, 2, 2).sum(), a)
    return routed.flatten().nonzero().flatten()


def gradcam_pp_exact(model, image, layer, cls=CAM_CLASS):
    """The exact Grad-CAM++ map of `image` at `layer` with Y = exp(z_cls) (`ferrograd cam`'s
    default score), model in evaluation mode."""
    with torch.no_grad():
        a = model.activations(image)[layer].detach()

    def score(batch):
        return model.logits_from(layer, batch)[:, cls].exp()

    first, second, third = exact_diagonal(score, a, pooling_winners(layer, a))
    k = a.shape[1]
    values = a.double().reshape(k, -1)
    channel_sum = values.sum(1, keepdim=True)
    second, third, first = (v.reshape(k, -1) for v in (second, third, first))
    denominator = 2 * second + channel_sum * third
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(denominator != 0, second / safe, torch.zeros_like(second))
    weights = (alpha * first.clamp(min=0)).sum(1)
    return (weights[:, None] * values).sum(0).clamp(min=0)


def bench_cam_exact(layers):
    torch.manual_seed(5)
    model = CourseClassifier()
    model.eval()
    image = torch.rand(1, 1, 28, 28)
    for name in layers:
        t0 = time.perf_counter()
        gradcam_pp_exact(model, image, CAM_LAYERS.index(name))
        emit({"name": "cam_exact", "layer": name, "s": time.perf_counter() - t0})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (well under 3 minutes)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="intra-op threads (default: os.cpu_count())")
    parser.add_argument("--only", default="",
                        help="comma-separated groups to run (default: all): " + ", ".join(GROUPS))
    parser.add_argument("--cam-layers", default=None,
                        help="cam_exact's layers, e.g. conv2,conv3, or all "
                             "(default: all; conv3 alone with --quick)")
    args = parser.parse_args()

    filters = [f for f in args.only.split(",") if f]
    named = GROUPS + UNTWINNED
    unknown = [f for f in filters if not any(g.startswith(f) for g in named)]
    if unknown:
        parser.error(f"--only: no group is named or begins with {', '.join(unknown)}")

    def wanted(group):
        return not filters or any(group == f or (group.startswith(f) and f not in named)
                                  for f in filters)

    if args.cam_layers is None:
        cam_layers = ["conv3"] if args.quick else list(CAM_LAYERS)
    elif args.cam_layers == "all":
        cam_layers = list(CAM_LAYERS)
    else:
        cam_layers = args.cam_layers.split(",")
        bad = [name for name in cam_layers if name not in CAM_LAYERS]
        if bad:
            parser.error(f"--cam-layers: {', '.join(bad)} is not one of conv1, conv2, conv3, all")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    # The 1-minute load average at start flags runs disturbed by other work.
    emit({"name": "meta", "engine": "pytorch", "version": torch.__version__,
          "threads": args.threads, "loadavg_1m": os.getloadavg()[0]})

    quick = args.quick
    if wanted("fmnist_cnn"):
        bench_cnn(reps=10 if quick else 50)
    if wanted("conv"):
        bench_conv2d(reps=5 if quick else 30)
        bench_conv_transpose2d(reps=5 if quick else 30)
    if wanted("matmul"):
        bench_matmul(reps=5 if quick else 30)
    if wanted("op_overhead"):
        bench_op_overhead(reps=3 if quick else 11)
    if wanted("hvp"):
        bench_hvp(reps=10 if quick else 100)
    if wanted("cam_exact"):
        bench_cam_exact(cam_layers)
    if wanted("deepfake"):
        bench_deepfake(reps=3 if quick else 11)
    if wanted("course"):
        bench_course(reps=3 if quick else 11)
    if wanted("peak_rss"):
        bench_peak_rss()  # last, so the peak reflects the training run


if __name__ == "__main__":
    main()
