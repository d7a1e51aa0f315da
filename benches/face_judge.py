"""An outside judge of the face swap: dlib's face-recognition ResNet (99.38% on LFW) and its
68-point landmarks, a network this project did not train, on the faces that
`ferrograd deepfake eval --write-images DIR` writes.

    python3 -m venv /tmp/dlib && /tmp/dlib/bin/pip install dlib-bin face-recognition-models numpy pillow scikit-image
    ferrograd deepfake eval --checkpoint runs/deepfake/checkpoint.safetensors --write-images runs/deepfake/judge
    /tmp/dlib/bin/python benches/face_judge.py runs/deepfake/judge [--json out.json]

For each direction (A's held-out faces through B's decoder, and B's through A's) and for the
reconstructions (each face through its own decoder), it prints:

- verified: dlib's verification rule, more than half of the target's real training photos
  within distance 0.6 of the face's embedding;
- within 95%: the share within the distance to the target's centroid that 95% of the target's
  real held-out photos keep;
- nearer target: the share nearer the target's centroid than the source's;
- own source found: the share whose 68 landmarks (as a fraction of the inter-ocular distance)
  are nearer those of their own source photo than those of every other held-out photo of the
  source identity; pose ratio: mean landmark error to the own source over the mean to the
  others (0: the pose and expression kept exactly; 1: the input ignored).

And for the reconstructions, scikit-image's PSNR and SSIM against the real held-out photo
(Gaussian window σ = 1.5, population covariance, as Wang et al. 2004 and `deepfake eval`), as
the mean over faces: an outside check of the figures `deepfake eval` prints (which it computes
on the decoder's floats, this on the 8-bit PNGs).

The same figures for controls: the real held-out photos themselves, those photos blurred (a
Gaussian of 3 px), and the target's pixel-mean face (a criterion the mean face passes proves
nothing about identity); and, for the landmark test alone, each source photo's own landmarks
moved by the difference between the two identities' mean landmark shapes (training photos):
what a swap that keeps the pose exactly, as sharp as a photo, and takes on the target's
average face shape would score; and the same from the landmarks of the photo blurred by 3 px
(such a swap as soft as the reconstructions).
"""

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image, ImageFilter

import dlib
import face_recognition_models
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

THRESHOLD = 0.6  # dlib's verification distance
LEFT_EYE, RIGHT_EYE = range(36, 42), range(42, 48)


class Judge:
    def __init__(self):
        self.shape = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self.net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def look(self, image):
        """(128-d embedding, 68x2 landmarks) of a face crop that fills the picture."""
        pixels = np.asarray(image.convert("RGB"))
        h, w = pixels.shape[:2]
        shape = self.shape(pixels, dlib.rectangle(0, 0, w - 1, h - 1))
        embedding = np.array(self.net.compute_face_descriptor(pixels, shape))
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=float)
        return embedding, points


def load(path):
    return Image.open(path).convert("RGB")


def landmark_error(p, q):
    """Mean point distance over the inter-ocular distance of q."""
    ocular = np.linalg.norm(q[list(LEFT_EYE)].mean(0) - q[list(RIGHT_EYE)].mean(0))
    return float(np.linalg.norm(p - q, axis=1).mean() / max(ocular, 1e-9))


def pose_figures(points, sources):
    """Own source found and pose ratio of faces with landmarks `points` made from `sources`
    (lists of (embedding, points)), face i from source i."""
    found = 0
    own_errors, other_errors = [], []
    for i, p in enumerate(points):
        errors = [landmark_error(p, s[1]) for s in sources]
        found += int(np.argmin(errors) == i)
        own_errors.append(errors[i])
        other_errors.extend(e for j, e in enumerate(errors) if j != i)
    return {
        "own_source_found": found / len(points),
        "pose_ratio": float(np.mean(own_errors) / np.mean(other_errors)),
    }


def figures(candidates, sources, target, source):
    """The four figures for faces made from `sources` (lists of (embedding, points)) meant
    to look like identity `target` (dict with train embeddings, centroid, radius95)."""
    n = len(candidates)
    verified = within = nearer = 0
    for emb, _ in candidates:
        distances = np.linalg.norm(target["train"] - emb, axis=1)
        verified += (distances <= THRESHOLD).mean() > 0.5
        to_target = np.linalg.norm(emb - target["centroid"])
        within += to_target <= target["radius95"]
        nearer += to_target < np.linalg.norm(emb - source["centroid"])
    return {
        "faces": n,
        "verified": verified / n,
        "within_95": within / n,
        "nearer_target": nearer / n,
        **pose_figures([points for _, points in candidates], sources),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="the folder `deepfake eval --write-images` wrote")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(args.dir, "faces.json")))
    judge = Judge()

    people = {}
    for side in ("a", "b"):
        root = os.path.join(args.dir, side)
        train_files = sorted(os.listdir(os.path.join(root, "train")))
        train_images = [load(os.path.join(root, "train", f)) for f in train_files]
        train_looks = [judge.look(im) for im in train_images]
        train = np.array([e for e, _ in train_looks])
        n = manifest[side]["held_out"]
        held = lambda kind: [load(os.path.join(root, "held_out", f"{i:04d}_{kind}.png")) for i in range(n)]
        real_images = held("real")
        real = [judge.look(im) for im in real_images]
        centroid = train.mean(0)
        radius95 = float(np.quantile([np.linalg.norm(e - centroid) for e, _ in real], 0.95))
        recon_images = held("reconstruction")
        pairs = [(np.asarray(r), np.asarray(x)) for r, x in zip(real_images, recon_images)]
        quality = {
            "psnr_db": float(np.mean([peak_signal_noise_ratio(r, x, data_range=255) for r, x in pairs])),
            "ssim": float(np.mean([structural_similarity(r, x, data_range=255, channel_axis=2, gaussian_weights=True,
                                                         sigma=1.5, use_sample_covariance=False) for r, x in pairs])),
        }
        mean_face = Image.fromarray(np.mean([np.asarray(im, dtype=float) for im in train_images], 0).round().astype(np.uint8))
        people[side] = {
            "name": manifest[side]["identity"],
            "train": train,
            "mean_shape": np.mean([points for _, points in train_looks], 0),
            "centroid": centroid,
            "radius95": radius95,
            "real": real,
            "reconstruction": [judge.look(im) for im in recon_images],
            "quality": quality,
            "swap": [judge.look(im) for im in held("swap")],
            "blurred": [judge.look(im.filter(ImageFilter.GaussianBlur(3))) for im in real_images],
            "mean_face": judge.look(mean_face),
        }
        if n < 10:
            print(f"warning: only {n} held-out faces of {people[side]['name']}: too few for these "
                  "figures to mean much", file=sys.stderr)

    rows = []
    for src, dst in (("a", "b"), ("b", "a")):
        s, t = people[src], people[dst]
        sources = s["real"]
        rows.append((f"swap {s['name']} -> {t['name']}", figures(s["swap"], sources, t, s)))
        rows.append((f"  control: the pixel-mean face of {t['name']}",
                     figures([t["mean_face"]] * len(sources), sources, t, s)))
        # Landmarks only: each source photo's own landmarks moved by the difference of the two
        # identities' mean shapes, what a swap that keeps the pose exactly and takes on the
        # target's average face shape would score; a floor for swaps, as sharp as a photo.
        shift = t["mean_shape"] - s["mean_shape"]
        moved = lambda looks: {"faces": len(sources), **pose_figures([p + shift for _, p in looks], sources)}
        rows.append((f"  control: own landmarks + ({t['name']} - {s['name']}) mean shape", moved(sources)))
        rows.append(("  control: same, from the photo blurred 3 px", moved(s["blurred"])))
    for side in ("a", "b"):
        p, o = people[side], people["b" if side == "a" else "a"]
        rows.append((f"reconstruction {p['name']}", figures(p["reconstruction"], p["real"], p, o)))
        rows.append((f"  control: real held-out {p['name']}", figures(p["real"], p["real"], p, o)))
        rows.append((f"  control: real held-out {p['name']}, blurred 3 px", figures(p["blurred"], p["real"], p, o)))

    print("| faces | n | verified | within 95% | nearer target | own source found | pose ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    share = lambda f, key: f"{100 * f[key]:.0f}%" if key in f else "-"
    for label, f in rows:
        print(f"| {label} | {f['faces']} | {share(f, 'verified')} | {share(f, 'within_95')} | "
              f"{share(f, 'nearer_target')} | {share(f, 'own_source_found')} | {f['pose_ratio']:.2f} |")
    print()
    print("| reconstructions (scikit-image) | PSNR | SSIM |")
    print("|---|---:|---:|")
    for side in ("a", "b"):
        q = people[side]["quality"]
        print(f"| {people[side]['name']} | {q['psnr_db']:.2f} dB | {q['ssim']:.3f} |")
    if args.json:
        out = {label.strip(): f for label, f in rows}
        out["reconstruction_quality"] = {people[side]["name"]: people[side]["quality"] for side in ("a", "b")}
        json.dump(out, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
