"""An outside judge of ferrograd's class activation maps: pytorch-grad-cam (PyPI `grad-cam`),
run on the same classifier, the same test images and the same class scores.

ferrograd writes every map before upsampling and normalisation (`ferrograd cam --raw`); this
script loads the classifier's weights file into the PyTorch twin of the architecture with
`load_state_dict(strict=True)` (the weights file holds the model alone; the optimizer state
lives beside it), runs pytorch-grad-cam's GradCAM, GradCAMPlusPlus and LayerCAM at the same
layer, target and image, and compares the two maps after the library's own post-processing
(ReLU, then min-max scaling with its 1e-7, applied per layer and again to the layers' mean;
the resize is to the layer's own size, so it changes nothing).

With --exact it also recomputes every `gradcam++exact` map of raw.json in float64 by PyTorch's
own nested autograd (the score of copies a + t·e_i differentiated three times in t, the twin
of cam/src/exact.rs in benches/torch_reference.py) and compares the diagonal derivatives d1,
d2, d3, the channel weights and the map with ferrograd's; give it a raw.json written with
`--dtype f64`.

    ferrograd cam --checkpoint C --raw --score logit \
        --method gradcam,gradcam++pytorch-grad-cam,layercam --out runs/cam_judge
    python benches/torch_gradcam.py C runs/cam_judge/raw.json

Needs torch, safetensors and grad-cam (pip install torch safetensors grad-cam).
Prints one line per (method, layer): images, largest and median absolute difference of the
[0, 1]-scaled maps, and the smallest rank correlation.
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import exact_diagonal  # noqa: E402

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import (  # noqa: E402
    ClassifierOutputSoftmaxTarget,
    ClassifierOutputTarget,
)

LAYERS = {"conv1": 0, "conv2": 1, "conv3": 2}
LAYER_SIDE = {"conv1": 28, "conv2": 14, "conv3": 7}
METHODS = {
    "gradcam": GradCAM,
    "gradcam++pytorch-grad-cam": GradCAMPlusPlus,
    "layercam": LayerCAM,
}


def first_max_pool(h):
    """2x2 max-pooling that, like ferrograd, takes the first element of a window (row-major)
    when its maximum is held twice. F.max_pool2d may take another; the values are the same,
    but the derivatives go elsewhere, and where the image is flat (its background) ties are
    everywhere, so the derivatives of an earlier layer would differ through them."""
    n, c, height, width = h.shape
    windows = h.reshape(n, c, height // 2, 2, width // 2, 2).permute(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n, c, height // 2, width // 2, 4)
    first = windows.argmax(-1, keepdim=True)  # the first maximal index, as documented
    return windows.gather(-1, first).squeeze(-1)


def pooling_winners(layer, a):
    """Flat indices of the elements that reach their window's output under first_max_pool
    (all of them at conv3, which is not pooled); every derivative of the others is 0."""
    if layer == 2:
        return torch.arange(a.numel())
    a = a.detach().requires_grad_()
    (routed,) = torch.autograd.grad(first_max_pool(a).sum(), a)
    return routed.flatten().nonzero().flatten()


class Twin(nn.Module):
    """models/src/classifier.rs under its checkpoint names: encoder.conv1..conv3, each
    [Conv3x3(pad 1)-BatchNorm-activation] x 2 (32-64-128 channels), 2x2 max-pooling after conv1
    and conv2, a global-average-pooled Linear(128->10) head, and the autoencoder's decoder."""

    def __init__(self, activation):
        super().__init__()
        # ferrograd's softplus is log(1 + e^x) everywhere: no switch to x above a threshold.
        act = {"relu": nn.ReLU, "softplus": lambda: nn.Softplus(threshold=1e9), "elu": nn.ELU}[activation]
        self.encoder = nn.Module()
        inputs = 1
        for i, c in enumerate((32, 64, 128)):
            setattr(self.encoder, f"conv{i + 1}", nn.Sequential(
                nn.Conv2d(inputs, c, 3, padding=1), nn.BatchNorm2d(c), act(),
                nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), act()))
            inputs = c
        self.head = nn.Linear(128, 10)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(128, 32, 2, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1))
        self.blocks = [self.encoder.conv1, self.encoder.conv2, self.encoder.conv3]

    def forward(self, x):
        """Logits: what pytorch-grad-cam differentiates."""
        return self.logits_from(0, self.activation(x, 0))

    def activation(self, x, layer):
        """Block `layer`'s output A, before its max-pooling."""
        h = x
        for i in range(layer + 1):
            if i > 0:
                h = first_max_pool(h)
            h = self.blocks[i](h)
        return h

    def logits_from(self, layer, a):
        h = a
        for i in range(layer, 3):
            if i > layer:
                h = self.blocks[i](h)
            if i < 2:
                h = first_max_pool(h)
        return self.head(h.mean((2, 3)))


def score_of(name, logits, category):
    """ferrograd's --score: logit, exp-logit or softmax of class `category`, per row."""
    if name == "logit":
        return logits[:, category]
    if name == "exp-logit":
        return logits[:, category].exp()
    return torch.softmax(logits, -1)[:, category]


def exact_in_pytorch(model, x, record):
    """d1, d2, d3, the weights and the map of the exact Grad-CAM++, in float64."""
    layer = LAYERS[record["layer"]]
    with torch.no_grad():
        a = model.activation(x, layer)
    first, second, third = exact_diagonal(
        lambda batch: score_of(record["score"], model.logits_from(layer, batch), record["class"]),
        a, pooling_winners(layer, a))
    k = a.shape[1]
    values = a.reshape(k, -1)
    channel_sum = values.sum(1, keepdim=True)
    d1, d2, d3 = (v.reshape(k, -1) for v in (first, second, third))
    denominator = 2 * d2 + channel_sum * d3
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(denominator != 0, d2 / safe, torch.zeros_like(d2))
    weights = (alpha * d1.clamp(min=0)).sum(1)
    cam = (weights[:, None] * values).sum(0).clamp(min=0)
    return first, second, third, weights, cam


def relative(ours, theirs):
    """The largest absolute difference over the largest magnitude of the two."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    scale = max(np.abs(ours).max(), np.abs(theirs).max(), 1e-300)
    return float(np.abs(ours - theirs).max() / scale)


def target_for(score, category):
    if score == "logit":
        return ClassifierOutputTarget(category)
    if score == "softmax":
        return ClassifierOutputSoftmaxTarget(category)
    # pytorch-grad-cam has no target for exp(z_c); this one is what ferrograd's exp-logit means.
    return lambda output: torch.exp(output[..., category] if output.ndim == 1 else output[:, category])


def scaled(cam):
    """pytorch-grad-cam's scale_cam_image without the resize: min-max to [0, 1], eps 1e-7."""
    cam = cam - cam.min()
    return cam / (1e-7 + cam.max())


def ranks(v):
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=float)
    # Ties share their average rank, as ferrograd's Spearman does.
    for value in np.unique(v):
        idx = v == value
        r[idx] = r[idx].mean()
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 1.0 if ra.std() == rb.std() else 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="the weights file written by `ferrograd train classifier`")
    ap.add_argument("raw", help="raw.json written by `ferrograd cam --raw`")
    ap.add_argument("--exact", action="store_true",
                    help="also recompute every gradcam++exact map in float64 (raw.json from --dtype f64)")
    ap.add_argument("--f64", action="store_true",
                    help="run the twin in float64 (for a raw.json written with --dtype f64)")
    ap.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()
    torch.set_default_dtype(torch.float32)

    with safe_open(args.checkpoint, "pt") as f:
        activation = f.metadata()["activation"]
    model = Twin(activation)
    print(model.load_state_dict(load_file(args.checkpoint), strict=True), file=sys.stderr)
    model.eval()

    raw = json.load(open(args.raw))
    images = gzip.open(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")).read()
    images = np.frombuffer(images, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255

    if args.exact:
        exact_check(model, raw, images)
        return
    if args.f64:
        model = model.double()
    results = {}
    for record in raw["maps"]:
        method, layer = record["method"], record["layer"]
        if method not in METHODS or layer not in LAYERS:
            continue
        side = LAYER_SIDE[layer]
        cam = METHODS[method](model=model, target_layers=[model.blocks[LAYERS[layer]]])
        cam.get_target_width_height = lambda _x, side=side: (side, side)
        x = torch.from_numpy(images[record["image"]][None].copy())
        if args.f64:
            x = x.double()
        theirs = cam(input_tensor=x, targets=[target_for(record["score"], record["class"])])[0]
        ours = np.maximum(np.asarray(record["map"], dtype=np.float64), 0).reshape(
            record["height"], record["width"])
        # The library scales each layer's map, then the mean over its target layers again.
        ours = scaled(scaled(ours))
        key = (method, layer, record["score"])
        diff = np.abs(ours - theirs.astype(np.float64))
        results.setdefault(key, []).append((diff.max(), spearman(ours.ravel(), theirs.ravel())))

    print("| method | layer | score | maps | largest abs difference | median of per-map largest | smallest rank correlation |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (method, layer, score), rows in sorted(results.items()):
        d = np.array([r[0] for r in rows])
        c = np.array([r[1] for r in rows])
        print(f"| {method} | {layer} | {score} | {len(rows)} | {d.max():.2e} | {np.median(d):.2e} | {c.min():.6f} |")


def exact_check(model, raw, images):
    model = model.double()
    rows = {}
    for record in raw["maps"]:
        if record["method"] != "gradcam++exact":
            continue
        x = torch.from_numpy(images[record["image"]][None].astype(np.float64))
        d1, d2, d3, weights, cam = exact_in_pytorch(model, x, record)
        key = (record["layer"], record["score"])
        # Compared summed over each pooling window (only the winner's are nonzero), which
        # would also hold if the two took different elements of a tied window.
        shape = record["activation_shape"]
        pooled = record["layer"] != "conv3"

        def by_window(v):
            v = np.asarray(v, dtype=np.float64).reshape(shape)
            if not pooled:
                return v
            k, h, w = shape
            return v.reshape(k, h // 2, 2, w // 2, 2).sum((2, 4))

        figures = [relative(by_window(record[name]), by_window(theirs.numpy()))
                   for name, theirs in (("d1", d1), ("d2", d2), ("d3", d3))]
        figures.append(relative(record["weights"], weights.numpy()))
        figures.append(relative(record["map"], cam.numpy().ravel()))
        rows.setdefault(key, []).append(figures)
    print("Exact Grad-CAM++ recomputed by PyTorch's nested autograd in float64: the largest "
          "difference over the largest magnitude, worst over the maps")
    print("| layer | score | maps | d1 | d2 | d3 | weights | map |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (layer, score), figures in sorted(rows.items()):
        worst = np.max(np.array(figures), axis=0)
        print(f"| {layer} | {score} | {len(figures)} | " + " | ".join(f"{v:.1e}" for v in worst) + " |")


if __name__ == "__main__":
    main()
