"""The VAE of `ferrograd train vae`, trained in PyTorch with the same settings, for the
cross-check of the test-set negative ELBO.

Same architecture (conv encoder to μ and log σ², conv-transpose decoder to logits), same
initialisation scheme (PyTorch's defaults, which ferrograd reproduces), Adam lr 1e-3, batch 128,
latent 16, 5 epochs, loss = BCE summed over pixels + KL per image, and the same estimator at test
time: one sample of z per image, BCE(σ(decoder(z)), x) summed over pixels + KL, averaged over the
10,000 test images. Seeds differ between the two engines by nature, so agreement is statistical.

Usage: python benches/torch_vae.py [--data /usr/share/datasets/fashion-mnist] [--epochs 5] [--threads 2]
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def load(folder, split):
    prefix = "train" if split == "train" else "t10k"
    name = lambda kind: next(os.path.join(folder, f) for f in (f"{prefix}-{kind}", f"{prefix}-{kind}.gz") if os.path.exists(os.path.join(folder, f)))
    images = read_idx(name("images-idx3-ubyte")).astype(np.float32) / 255.0
    return torch.from_numpy(images).unsqueeze(1)


class Vae(nn.Module):
    def __init__(self, latent=16):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 2 * latent))
        self.decoder = nn.Sequential(
            nn.Linear(latent, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))

    def objective(self, x):
        h = self.encoder(x)
        mu, log_var = h[:, :self.latent], h[:, self.latent:]
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        logits = self.decoder(z)
        n = x.shape[0]
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
        kl = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp()) / n
        return recon, kl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, test = load(args.data, "train"), load(args.data, "test")
    model = Vae()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train))
        for i in range(0, len(train), 128):
            recon, kl = model.objective(train[order[i:i + 128]])
            opt.zero_grad()
            (recon + kl).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            total = 0.0
            for i in range(0, len(test), 500):
                recon, kl = model.objective(test[i:i + 500])
                total += (recon + kl).item() * len(test[i:i + 500])
        print(json.dumps({"epoch": epoch, "test_negative_elbo": total / len(test), "seconds": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
