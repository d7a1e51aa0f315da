"""Runs ferrograd's and PyTorch's reference benchmarks one after the other on this machine and
prints a side-by-side markdown table.

Usage (from the repository root):
    python3 benches/compare.py [--quick] [--python /work/venv/bin/python]
        [--only course,cam_exact] [--cam-layers conv1,conv2,conv3|all]

--only runs the named workload groups on both sides (`cargo bench -- GROUP ...` and
`torch_reference.py --only GROUP,...`); --cam-layers picks cam_exact's layers on both sides.
Needs a Python with torch for the PyTorch half (`--python`); only the standard library here.
"""

import argparse
import json
import subprocess
import sys


def json_lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rows


def key(row):
    return (row["name"], tuple(row.get("shape", [])), row.get("pass", ""), row.get("layer", ""))


# (field, higher is better)
FIELDS = {
    "fmnist_cnn_train": ("images_per_s", True),
    "fmnist_cnn_infer": ("images_per_s", True),
    "conv2d": ("gflops", True),
    "conv_transpose2d": ("gflops", True),
    "matmul": ("gflops", True),
    "hvp": ("ms", False),
    "deepfake_train": ("images_per_s", True),
    "classifier_train": ("images_per_s", True),
    "classifier_infer": ("images_per_s", True),
    "vae_train": ("images_per_s", True),
    "gan_train": ("images_per_s", True),
    "aae_train": ("images_per_s", True),
    "cam_exact": ("s", False),
    "peak_rss": ("mib", False),
}


def number(v):
    """One decimal for large figures, three significant digits for small ones (seconds, ms)."""
    return f"{v:.1f}" if abs(v) >= 100 or v != v else f"{v:.3g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--only", default="", help="comma-separated workload groups (default: all)")
    ap.add_argument("--cam-layers", default=None, help="cam_exact's layers, e.g. conv2,conv3 or all")
    args = ap.parse_args()
    quick = ["--quick"] if args.quick else []
    groups = [g for g in args.only.split(",") if g]
    ours_cmd = ["cargo", "bench", "--bench", "reference", "--"] + quick + groups
    theirs_cmd = [args.python, "benches/torch_reference.py"] + quick
    if groups:
        theirs_cmd += ["--only", ",".join(groups)]
    if args.cam_layers:
        ours_cmd.append(f"--cam-layers={args.cam_layers}")
        theirs_cmd += ["--cam-layers", args.cam_layers]
    ours = json_lines(ours_cmd)
    theirs = json_lines(theirs_cmd)
    meta = {r["engine"]: r for r in ours + theirs if r["name"] == "meta"}
    print(f"ferrograd {meta['ferrograd']['version']} vs PyTorch {meta['pytorch']['version']}, "
          f"{meta['ferrograd']['threads']} threads each\n")
    print("| workload | shape / layer | pass | metric | ferrograd | PyTorch | ratio (≥1 is ferrograd ahead) |")
    print("|---|---|---|---|---|---|---|")
    torch_rows = {key(r): r for r in theirs}
    for r in ours:
        if r["name"] == "meta":
            continue
        t = torch_rows.get(key(r))
        shape = ",".join(map(str, r.get("shape", []))) or r.get("layer", "-")
        if r["name"] == "op_overhead":
            for f in ("us_per_op_fwd", "us_per_op_bwd"):
                theirs_v = t[f] if t else float("nan")
                print(f"| op_overhead | - | {f[-3:]} | µs/op | {r[f]:.3f} | {theirs_v:.3f} | {theirs_v / r[f]:.2f} |")
            continue
        if r["name"] not in FIELDS:
            continue  # no PyTorch twin (cam's other methods, deepfake_augment)
        field, higher = FIELDS[r["name"]]
        mine = r[field]
        other = t[field] if t else float("nan")
        ratio = mine / other if higher else other / mine
        print(f"| {r['name']} | {shape} | {r.get('pass', '-')} | {field} | {number(mine)} | {number(other)} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
