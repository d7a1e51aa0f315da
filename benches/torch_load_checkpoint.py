"""Loads a `ferrograd train ae` checkpoint into the same architecture built in PyTorch, by the
documented parameter names (strict: every key must match), and reports the test MSE PyTorch
computes with it.

Usage: python benches/torch_load_checkpoint.py runs/ae/checkpoint.safetensors [--latent 16]
Needs torch and safetensors (pip install torch safetensors).
"""

import argparse
import gzip
import os

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()
    state = load_file(args.checkpoint)
    weights = state  # the weights file holds the model alone: no key to drop
    model = nn.Module()
    model.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, args.latent))
    model.decoder = nn.Sequential(nn.Linear(args.latent, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
    print(model.load_state_dict(weights, strict=True))
    raw = gzip.open(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")).read()
    x = torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255)
    with torch.no_grad():
        mse = ((torch.sigmoid(model.decoder(model.encoder(x))) - x) ** 2).mean().item()
    print(f"test MSE computed by PyTorch from the ferrograd checkpoint: {mse:.5f}")


if __name__ == "__main__":
    main()
