"""Runs ferrograd's and PyTorch's reference benchmarks one after the other on this machine and
prints a side-by-side markdown table.

Usage (from the repository root):
    python3 benches/compare.py [--quick] [--python /work/venv/bin/python]

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
    return (row["name"], tuple(row.get("shape", [])), row.get("pass", ""))


# (field, higher is better)
FIELDS = {
    "fmnist_cnn_train": ("images_per_s", True),
    "fmnist_cnn_infer": ("images_per_s", True),
    "conv2d": ("gflops", True),
    "conv_transpose2d": ("gflops", True),
    "matmul": ("gflops", True),
    "hvp": ("ms", False),
    "peak_rss": ("mib", False),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    quick = ["--quick"] if args.quick else []
    ours = json_lines(["cargo", "bench", "--bench", "reference", "--"] + quick)
    theirs = json_lines([args.python, "benches/torch_reference.py"] + quick)
    meta = {r["engine"]: r for r in ours + theirs if r["name"] == "meta"}
    print(f"ferrograd {meta['ferrograd']['version']} vs PyTorch {meta['pytorch']['version']}, "
          f"{meta['ferrograd']['threads']} threads each\n")
    print("| workload | shape | pass | metric | ferrograd | PyTorch | ratio (≥1 is ferrograd ahead) |")
    print("|---|---|---|---|---|---|---|")
    torch_rows = {key(r): r for r in theirs}
    for r in ours:
        if r["name"] == "meta":
            continue
        t = torch_rows.get(key(r))
        shape = ",".join(map(str, r.get("shape", []))) or "-"
        if r["name"] == "op_overhead":
            for f in ("us_per_op_fwd", "us_per_op_bwd"):
                theirs_v = t[f] if t else float("nan")
                print(f"| op_overhead | - | {f[-3:]} | µs/op | {r[f]:.3f} | {theirs_v:.3f} | {theirs_v / r[f]:.2f} |")
            continue
        field, higher = FIELDS[r["name"]]
        mine = r[field]
        other = t[field] if t else float("nan")
        ratio = mine / other if higher else other / mine
        print(f"| {r['name']} | {shape} | {r.get('pass', '-')} | {field} | {mine:.1f} | {other:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
