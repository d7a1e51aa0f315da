"""The independent check of `ferrograd eval`'s importance-weighted bounds: loads a `ferrograd
train vae` checkpoint into the same architecture built in PyTorch (strict: every weight name
must match) and computes, on the same first N test images with the same likelihood protocol,
the negative ELBO and −L_K for each K, with PyTorch's own log-sum-exp and normal densities.

Protocol (as `ferrograd eval`): p(x|z) is a Bernoulli likelihood over the 784 pixels evaluated
at the pixel intensities in [0, 1] (the likelihood the VAE was trained on), or with --binarize
at dynamically binarised images. The binarisation draws differ between the engines (each has
its own generator), so with --binarize the two agree only statistically. The codes z are drawn
by PyTorch, so agreement is statistical: within the two standard errors.

Usage: python benches/torch_iwae.py runs/vae/checkpoint.safetensors [--k 1,64,5000] [--images 1000]
Needs torch and safetensors (pip install torch safetensors).
"""

import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from torch_vae import Vae


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def test_images(folder, n):
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            x = read_idx(path)[:n].astype(np.float32) / 255.0
            return torch.from_numpy(x).unsqueeze(1)
    raise SystemExit(f"no Fashion-MNIST test images in {folder}")


def build(latent):
    # The same architecture as the training twin, whose weight names match the checkpoint's.
    return Vae(latent)


@torch.no_grad()
def log_weights(model, x, k, latent, rows=4096):
    """log p(x|z_k) + log p(z_k) − log q(z_k|x) for k draws per image: [n, k]."""
    h = model.encoder(x)
    mu, log_var = h[:, :latent], h[:, latent:]
    std = torch.exp(0.5 * log_var)
    prior = torch.distributions.Normal(0.0, 1.0)
    out = []
    chunk = max(1, min(k, rows // x.shape[0]))
    for start in range(0, k, chunk):
        s = min(chunk, k - start)
        eps = torch.randn(x.shape[0], s, latent, dtype=x.dtype)
        z = mu[:, None, :] + std[:, None, :] * eps
        posterior = torch.distributions.Normal(mu[:, None, :], std[:, None, :])
        log_pz = prior.log_prob(z).sum(-1)
        log_qz = posterior.log_prob(z).sum(-1)
        logits = model.decoder(z.reshape(-1, latent)).reshape(x.shape[0], s, -1)
        target = x.reshape(x.shape[0], 1, -1).expand_as(logits)
        log_px = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
        out.append(log_px + log_pz - log_qz)
    return torch.cat(out, dim=1)


def mean_se(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--k", default="1,64,5000")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--binarize", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ks = [int(k) for k in args.k.split(",")]
    state = load_file(args.checkpoint)
    weights = state  # the weights file holds the model alone (optimizer state lives beside it)
    latent = weights["decoder.0.weight"].shape[1]
    model = build(latent)
    model.load_state_dict(weights, strict=True)
    model.eval()
    x_all = test_images(args.data, args.images)
    if args.binarize is not None:
        g = torch.Generator().manual_seed(args.binarize)
        x_all = (torch.rand(x_all.shape, generator=g) < x_all).float()
    t0 = time.time()
    per_k = {k: [] for k in ks}
    elbo = []
    for start in range(0, len(x_all), 16):
        x = x_all[start:start + 16]
        with torch.no_grad():
            h = model.encoder(x)
            mu, log_var = h[:, :latent], h[:, latent:]
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            recon = F.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="none").sum((1, 2, 3))
            kl = 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(1)
            elbo.extend((recon + kl).tolist())
        w = log_weights(model, x, max(ks), latent)
        for k in ks:
            bound = torch.logsumexp(w[:, :k], dim=1) - math.log(k)
            per_k[k].extend((-bound).tolist())
    result = {
        "engine": "pytorch " + torch.__version__,
        "checkpoint": args.checkpoint,
        "images": len(x_all),
        "data": "dynamic binarisation (torch generator)" if args.binarize is not None else "pixel intensities as Bernoulli targets",
        "negative_elbo": mean_se(elbo),
        "negative_iwae_bounds": {str(k): mean_se(per_k[k]) for k in ks},
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
