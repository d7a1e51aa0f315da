"""Differential test of ferrograd's autodiff against PyTorch's, on random op programs.

Draws random programs (2-6 ops over 1-3 inputs, every op ferrograd has, f64), evaluates each
in PyTorch and in ferrograd (`cargo run --release --example program`), and compares the
value and the derivatives of orders 1-3 along fixed random directions:

    g1 = d<y, u>/dx,   g2 = d(sum_i <g1_i, v1_i>)/dx,   g3 = d(sum_i <g2_i, v2_i>)/dx

with respect to every input (and now and then an inner value too). Piecewise ops (relu, abs, clamp, max, max-pool, elu, leaky relu)
are applied only to values that cannot sit exactly on a kink or a tie (not to the output of
relu, pad or up-sampling, for instance), where the two engines may legitimately differ.

Usage:
    /work/venv/bin/python benches/torch_difftest.py [--programs N] [--seed S] [--device gpu]
        [--binary path/to/program] [--show K]

Prints one summary line per op (programs containing it, worst relative error) and exits 1
if any program differs by more than the tolerance (f64: |a - b| <= 1e-9 * (1 + max|b|);
GPU f32 against PyTorch f64: 1e-3).
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
from collections import defaultdict

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

UNARY_SMOOTH = ["neg", "exp", "sigmoid", "tanh", "softplus"]
UNARY_POSITIVE = ["log", "sqrt", "powf"]
UNARY_PIECEWISE = ["relu", "abs", "leaky_relu", "elu", "clamp"]


class Val:
    """A value of the program: its shape and what is known of it."""

    def __init__(self, shape, positive=False, generic=True):
        self.shape = list(shape)
        self.positive = positive  # all values > 0 (for log, sqrt, real powers, divisors)
        self.generic = generic  # no exact zeros or ties (safe for piecewise ops)


class Gen:
    def __init__(self, rng):
        self.r = rng
        self.inputs = []  # (shape, values)
        self.vals = []
        self.ops = []

    def new_input(self, shape, positive=False, distinct=False):
        n = math.prod(shape)
        if distinct:
            vals = [(i - n / 2) * 0.07 + 0.03 * self.r.random() for i in range(n)]
            self.r.shuffle(vals)
        elif positive:
            vals = [0.5 + 1.5 * self.r.random() for _ in range(n)]
        else:
            vals = [self.r.gauss(0, 1) for _ in range(n)]
        # Inputs come first in the numbering: renumber the ops' arguments.
        k = len(self.inputs)
        self.inputs.append({"shape": list(shape), "values": vals})
        for op in self.ops:
            op["args"] = [a + 1 if a >= k else a for a in op["args"]]
        self.vals.insert(k, Val(shape, positive=positive))
        return k

    def push(self, op, shape, **known):
        self.ops.append(op)
        self.vals.append(Val(shape, **known))
        return len(self.vals) - 1

    def shape(self, rank_lo=1, rank_hi=3, hi=4):
        return [self.r.randint(1, hi) for _ in range(self.r.randint(rank_lo, rank_hi))]

    def pick(self, pred=lambda v: True):
        idx = [i for i, v in enumerate(self.vals) if pred(v)]
        return self.r.choice(idx) if idx else None

    # ---- one random step -------------------------------------------------------------------

    def step(self):
        r = self.r
        kind = r.choice(
            ["unary"] * 6
            + ["binary"] * 4
            + ["reduce"] * 3
            + ["shape"] * 4
            + ["matmul"] * 2
            + ["conv"] * 2
            + ["pool"] * 2
            + ["nn"] * 3
        )
        getattr(self, "step_" + kind)()

    def step_unary(self):
        r = self.r
        group = r.choice(["smooth", "positive", "piecewise"])
        if group == "positive":
            i = self.pick(lambda v: v.positive)
            if i is None:
                i = self.new_input(self.shape(), positive=True)
            name = r.choice(UNARY_POSITIVE)
            op = {"op": name, "args": [i]}
            if name == "powf":
                op["p"] = r.choice([-1.5, 0.5, 2.0, 3.0])
            # log of a value in (0.5, 2) may be negative; roots and powers stay positive.
            self.push(op, self.vals[i].shape, positive=(name != "log"))
            return
        if group == "piecewise":
            i = self.pick(lambda v: v.generic)
            if i is None:
                i = self.new_input(self.shape())
            name = r.choice(UNARY_PIECEWISE)
            op = {"op": name, "args": [i]}
            if name == "leaky_relu":
                op["slope"] = 0.1
            if name == "elu":
                op["alpha"] = 1.3
            if name == "clamp":
                op["lo"], op["hi"] = -0.5, 0.7
            self.push(op, self.vals[i].shape, generic=False)
            return
        i = self.pick()
        name = r.choice(UNARY_SMOOTH + ["add_scalar", "mul_scalar"])
        op = {"op": name, "args": [i]}
        if name in ("add_scalar", "mul_scalar"):
            op["c"] = r.choice([-1.5, 0.25, 2.0])
        v = self.vals[i]
        positive = name in ("exp", "sigmoid", "softplus") or (
            v.positive and name == "mul_scalar" and op["c"] > 0
        )
        self.push(op, v.shape, positive=positive, generic=v.generic)

    def step_binary(self):
        r = self.r
        name = r.choice(["add", "sub", "mul", "div"])
        i = self.pick()
        a = self.vals[i].shape
        # A second operand that broadcasts: a suffix of a with some sizes set to 1, either way round.
        keep = r.randint(0, len(a))
        b = [1 if r.random() < 0.4 else d for d in a[len(a) - keep:]]
        j = self.pick(lambda v: v.shape == b and (name != "div" or v.positive))
        if j is None:
            j = self.new_input(b, positive=(name == "div"))
            i = i + 1 if i >= j else i
        args = [i, j] if r.random() < 0.7 or name == "div" else [j, i]
        out = list(torch.broadcast_shapes(tuple(self.vals[args[0]].shape), tuple(self.vals[args[1]].shape)))
        self.push({"op": name, "args": args}, out)

    def axes_of(self, shape):
        axes = [a for a in range(len(shape)) if self.r.random() < 0.5] or [len(shape) - 1]
        return [a - len(shape) if self.r.random() < 0.3 else a for a in axes]

    def step_reduce(self):
        r = self.r
        name = r.choice(["sum", "mean", "logsumexp", "var", "max", "sum_all", "mean_all"])
        if name == "max":
            i = self.new_input(self.shape(), distinct=True)
        else:
            i = self.pick(lambda v: len(v.shape) >= 1)
            if i is None:
                i = self.new_input(self.shape())
        shape = self.vals[i].shape
        if name in ("sum_all", "mean_all"):
            self.push({"op": name, "args": [i]}, [])
            return
        axes = self.axes_of(shape)
        keep = r.random() < 0.5
        resolved = {a % len(shape) for a in axes}
        out = [1 if d in resolved else s for d, s in enumerate(shape)] if keep else [
            s for d, s in enumerate(shape) if d not in resolved
        ]
        self.push({"op": name, "args": [i], "axes": axes, "keepdim": keep}, out)

    def step_shape(self):
        r = self.r
        name = r.choice(
            ["reshape", "permute", "transpose", "broadcast_to", "unsqueeze", "flatten", "slice",
             "pad", "concat", "stack", "index_select"]
        )
        i = self.pick(lambda v: len(v.shape) >= 1)
        if i is None:
            i = self.new_input(self.shape())
        v = self.vals[i]
        s = v.shape
        g = v.generic
        if name == "reshape":
            n = math.prod(s)
            out = r.choice([[n], [n, 1], [1, n], s])
            self.push({"op": name, "args": [i], "shape": out}, out, positive=v.positive, generic=g)
        elif name == "permute":
            perm = list(range(len(s)))
            r.shuffle(perm)
            self.push({"op": name, "args": [i], "perm": perm}, [s[p] for p in perm], positive=v.positive, generic=g)
        elif name == "transpose":
            a, b = r.randrange(len(s)), r.randrange(len(s))
            out = list(s)
            out[a], out[b] = out[b], out[a]
            self.push({"op": name, "args": [i], "a": a - len(s) if r.random() < 0.3 else a, "b": b}, out, positive=v.positive, generic=g)
        elif name == "broadcast_to":
            out = [r.randint(1, 3)] + [d if d != 1 else r.randint(1, 3) for d in s]
            self.push({"op": name, "args": [i], "shape": out}, out, positive=v.positive, generic=False)
        elif name == "unsqueeze":
            a = r.randint(0, len(s))
            self.push({"op": name, "args": [i], "axis": a}, s[:a] + [1] + s[a:], positive=v.positive, generic=g)
        elif name == "flatten":
            a = r.randrange(len(s))
            self.push({"op": name, "args": [i], "start": a}, s[:a] + [math.prod(s[a:])], positive=v.positive, generic=g)
        elif name == "slice":
            ranges = []
            for d in s:
                lo = r.randrange(d)
                ranges.append([lo, r.randint(lo + 1, d)])
            self.push({"op": name, "args": [i], "ranges": ranges}, [b - a for a, b in ranges], positive=v.positive, generic=g)
        elif name == "pad":
            pads = [[r.randint(0, 2), r.randint(0, 2)] for _ in s]
            self.push({"op": name, "args": [i], "pads": pads}, [d + a + b for d, (a, b) in zip(s, pads)], generic=False)
        elif name in ("concat", "stack"):
            axis = r.randrange(len(s) + (1 if name == "stack" else 0))
            other = list(s)
            if name == "concat":
                other[axis] = r.randint(1, 3)
            j = self.new_input(other)
            i = i + 1 if i >= j else i
            out = list(s)
            if name == "concat":
                out[axis] += other[axis]
            else:
                out.insert(axis, 2)
            args = [i, j] if r.random() < 0.5 else [j, i]
            self.push({"op": name, "args": args, "axis": axis}, out)
        else:
            axis = r.randrange(len(s))
            picks = [r.randrange(s[axis]) for _ in range(r.randint(1, 4))]
            out = list(s)
            out[axis] = len(picks)
            self.push({"op": name, "args": [i], "axis": axis - len(s) if r.random() < 0.3 else axis, "indices": picks}, out, positive=v.positive, generic=False)

    def step_matmul(self):
        r = self.r
        m, k, n = r.randint(1, 4), r.randint(1, 4), r.randint(1, 4)
        ta, tb = r.random() < 0.5, r.random() < 0.5
        batch_a, batch_b = r.choice([([], []), ([2], [2]), ([2, 1], [3]), ([], [2])])
        sa = batch_a + ([k, m] if ta else [m, k])
        sb = batch_b + ([n, k] if tb else [k, n])
        i = self.pick(lambda v: v.shape == sa)
        if i is None:
            i = self.new_input(sa)
        j = self.new_input(sb)
        i = i + 1 if i >= j else i
        out = list(torch.broadcast_shapes(tuple(batch_a), tuple(batch_b))) + [m, n]
        self.push({"op": "matmul", "args": [i, j], "ta": ta, "tb": tb}, out)

    def step_conv(self):
        r = self.r
        transposed = r.random() < 0.4
        groups = r.randint(1, 2)
        cg, kg = r.randint(1, 2), r.randint(1, 2)
        c, k = cg * groups, kg * groups
        kh, kw = r.randint(1, 3), r.randint(1, 3)
        stride, dil = r.randint(1, 2), r.randint(1, 2)
        span = (dil * (kh - 1) + 1, dil * (kw - 1) + 1)
        h, w = span[0] + r.randint(0, 2), span[1] + r.randint(0, 2)
        n = r.randint(1, 2)
        if transposed:
            pad = min(r.randint(0, 1), (min(span) - 1) // 2)
            outpad = r.randrange(max(stride, dil))
            x = self.input_or_value([n, c, h - 1 if h > 1 else h, w - 1 if w > 1 else w])
            xs = self.vals[x].shape
            wt = self.new_input([c, kg, kh, kw])
            x = x + 1 if x >= wt else x
            bias = self.new_input([k]) if r.random() < 0.5 else None
            if bias is not None:
                x, wt = (x + 1 if x >= bias else x), (wt + 1 if wt >= bias else wt)
            oh = (xs[2] - 1) * stride - 2 * pad + dil * (kh - 1) + outpad + 1
            ow = (xs[3] - 1) * stride - 2 * pad + dil * (kw - 1) + outpad + 1
            op = {"op": "conv_transpose2d", "args": [x, wt] + ([bias] if bias is not None else []),
                  "stride": [stride, stride], "padding": [pad, pad], "output_padding": [outpad, outpad],
                  "dilation": [dil, dil], "groups": groups}
            self.push(op, [xs[0], k, oh, ow])
        else:
            pad = r.randint(0, 1)
            x = self.input_or_value([n, c, h, w])
            wt = self.new_input([k, cg, kh, kw])
            x = x + 1 if x >= wt else x
            bias = self.new_input([k]) if r.random() < 0.5 else None
            if bias is not None:
                x, wt = (x + 1 if x >= bias else x), (wt + 1 if wt >= bias else wt)
            oh = (h + 2 * pad - span[0]) // stride + 1
            ow = (w + 2 * pad - span[1]) // stride + 1
            op = {"op": "conv2d", "args": [x, wt] + ([bias] if bias is not None else []),
                  "stride": [stride, stride], "padding": [pad, pad], "dilation": [dil, dil], "groups": groups}
            self.push(op, [n, k, oh, ow])

    def input_or_value(self, shape):
        i = self.pick(lambda v: v.shape == shape)
        return i if i is not None else self.new_input(shape)

    def step_pool(self):
        r = self.r
        name = r.choice(["max_pool2d", "avg_pool2d", "global_avg_pool2d", "upsample_nearest2d", "pixel_shuffle"])
        n, c, h, w = r.randint(1, 2), r.randint(1, 2), r.randint(3, 5), r.randint(3, 5)
        if name == "max_pool2d":
            i = self.new_input([n, c, h, w], distinct=True)
            k, s = r.randint(2, 3), r.randint(1, 2)
            p = r.randint(0, k // 2)
            out = [n, c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1]
            self.push({"op": name, "args": [i], "k": k, "s": s, "p": p}, out, generic=False)
        elif name == "avg_pool2d":
            i = self.input_or_value([n, c, h, w])
            k, s = r.randint(1, 3), r.randint(1, 2)
            p = r.randint(0, k // 2)
            out = [n, c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1]
            self.push({"op": name, "args": [i], "k": k, "s": s, "p": p}, out)
        elif name == "global_avg_pool2d":
            i = self.input_or_value([n, c, h, w])
            self.push({"op": name, "args": [i]}, [n, c])
        elif name == "upsample_nearest2d":
            i = self.input_or_value([n, c, h, w])
            sc = r.randint(1, 3)
            self.push({"op": name, "args": [i], "scale": sc}, [n, c, h * sc, w * sc], generic=False)
        else:
            f = r.randint(1, 2)
            i = self.input_or_value([n, c * f * f, h, w])
            self.push({"op": name, "args": [i], "r": f}, [n, c, h * f, w * f], generic=self.vals[i].generic)

    def step_nn(self):
        r = self.r
        name = r.choice(["softmax", "log_softmax", "cross_entropy", "bce_with_logits", "mse_loss", "l1_loss", "batch_norm"])
        if name in ("softmax", "log_softmax"):
            i = self.pick(lambda v: len(v.shape) >= 1)
            if i is None:
                i = self.new_input(self.shape())
            s = self.vals[i].shape
            axis = -r.randint(1, len(s))
            self.push({"op": name, "args": [i], "axis": axis}, s, positive=(name == "softmax"))
        elif name == "cross_entropy":
            n, c = r.randint(1, 4), r.randint(2, 5)
            i = self.input_or_value([n, c])
            labels = [r.randrange(c) for _ in range(n)]
            self.push({"op": name, "args": [i], "labels": labels}, [])
        elif name in ("bce_with_logits", "mse_loss", "l1_loss"):
            i = self.pick(lambda v: len(v.shape) >= 1 and (name != "l1_loss" or v.generic))
            if i is None:
                i = self.new_input(self.shape())
            s = self.vals[i].shape
            j = self.new_input(s, positive=(name == "bce_with_logits"))
            i = i + 1 if i >= j else i
            self.push({"op": name, "args": [i, j]}, [])
        else:
            shape = r.choice([[r.randint(2, 4), r.randint(1, 3)], [r.randint(1, 2), r.randint(1, 3), 2, r.randint(1, 3)]])
            i = self.input_or_value(shape)
            c = shape[1]
            gm = self.new_input([c], positive=True)
            i = i + 1 if i >= gm else i
            bt = self.new_input([c])
            i, gm = (i + 1 if i >= bt else i), (gm + 1 if gm >= bt else gm)
            self.push({"op": name, "args": [i, gm, bt], "eps": 1e-5}, shape)


def draw_program(pid, rng, order):
    g = Gen(rng)
    g.new_input(g.shape())
    for _ in range(rng.randint(1, 5)):
        g.step()
    y_shape = g.vals[-1].shape
    # Derivatives with respect to every input, and a quarter of the time one inner value as
    # well (a gradient with respect to an op's output must count only that output's uses).
    # Only at order 1: a higher derivative with respect to an inner value depends on how each
    # engine writes its backward pass (PyTorch's softmax backward reads the softmax's output,
    # ferrograd's reads its input), not on the function.
    wrt = list(range(len(g.inputs)))
    inner = list(range(len(g.inputs), len(g.vals) - 1))
    if inner and rng.random() < 0.25:
        wrt.append(rng.choice(inner))
        order = 1
    sizes = [math.prod(g.vals[i].shape) for i in wrt]
    prog = {
        "id": pid,
        "inputs": g.inputs,
        "ops": g.ops,
        "order": order,
        "wrt": wrt,
        "u": [rng.gauss(0, 1) for _ in range(math.prod(y_shape))],
        "v1": [[rng.gauss(0, 1) for _ in range(n)] for n in sizes],
        "v2": [[rng.gauss(0, 1) for _ in range(n)] for n in sizes],
    }
    return prog


# ---- PyTorch's side ---------------------------------------------------------------------------

def t_apply(op, vals):
    a = [vals[i] for i in op["args"]]
    n = op["op"]
    ax = op.get("axes")
    keep = op.get("keepdim", False)
    pair = lambda k: tuple(op[k])
    if n in ("neg", "exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh"):
        return getattr(torch, n)(a[0])
    if n == "softplus":
        return F.softplus(a[0])
    if n == "leaky_relu":
        return F.leaky_relu(a[0], op["slope"])
    if n == "elu":
        return F.elu(a[0], op["alpha"])
    if n == "powf":
        return a[0] ** op["p"]
    if n == "clamp":
        return a[0].clamp(op["lo"], op["hi"])
    if n == "add_scalar":
        return a[0] + op["c"]
    if n == "mul_scalar":
        return a[0] * op["c"]
    if n in ("add", "sub", "mul", "div"):
        return getattr(torch, n)(a[0], a[1])
    if n == "sum":
        return a[0].sum(dim=ax, keepdim=keep)
    if n == "mean":
        return a[0].mean(dim=ax, keepdim=keep)
    if n == "max":
        return a[0].amax(dim=ax, keepdim=keep)
    if n == "logsumexp":
        return torch.logsumexp(a[0], dim=ax, keepdim=keep)
    if n == "var":
        return a[0].var(dim=ax, keepdim=keep, unbiased=False)
    if n == "sum_all":
        return a[0].sum()
    if n == "mean_all":
        return a[0].mean()
    if n == "reshape":
        return a[0].reshape(op["shape"])
    if n == "permute":
        return a[0].permute(op["perm"])
    if n == "transpose":
        return a[0].transpose(op["a"], op["b"])
    if n == "broadcast_to":
        return a[0].broadcast_to(op["shape"])
    if n == "unsqueeze":
        return a[0].unsqueeze(op["axis"])
    if n == "flatten":
        # Not Tensor.flatten: on a 1-D tensor PyTorch returns the input itself, so a gradient
        # with respect to its "output" counts the input's other uses too.
        return a[0].reshape(list(a[0].shape[: op["start"]]) + [-1])
    if n == "slice":
        return a[0][tuple(slice(lo, hi) for lo, hi in op["ranges"])]
    if n == "pad":
        flat = []
        for lo, hi in reversed(op["pads"]):
            flat += [lo, hi]
        return F.pad(a[0], flat)
    if n == "concat":
        return torch.cat(a, op["axis"])
    if n == "stack":
        return torch.stack(a, op["axis"])
    if n == "index_select":
        return a[0].index_select(op["axis"], torch.tensor(op["indices"]))
    if n == "matmul":
        x = a[0].transpose(-1, -2) if op["ta"] else a[0]
        w = a[1].transpose(-1, -2) if op["tb"] else a[1]
        return x @ w
    if n == "conv2d":
        return F.conv2d(a[0], a[1], a[2] if len(a) > 2 else None, stride=pair("stride"),
                        padding=pair("padding"), dilation=pair("dilation"), groups=op["groups"])
    if n == "conv_transpose2d":
        return F.conv_transpose2d(a[0], a[1], a[2] if len(a) > 2 else None, stride=pair("stride"),
                                  padding=pair("padding"), output_padding=pair("output_padding"),
                                  dilation=pair("dilation"), groups=op["groups"])
    if n == "max_pool2d":
        return F.max_pool2d(a[0], op["k"], op["s"], op["p"])
    if n == "avg_pool2d":
        return F.avg_pool2d(a[0], op["k"], op["s"], op["p"], count_include_pad=True)
    if n == "global_avg_pool2d":
        return a[0].mean(dim=(2, 3))
    if n == "upsample_nearest2d":
        return F.interpolate(a[0], scale_factor=op["scale"], mode="nearest")
    if n == "pixel_shuffle":
        return F.pixel_shuffle(a[0], op["r"])
    if n == "softmax":
        return torch.softmax(a[0], op["axis"])
    if n == "log_softmax":
        return torch.log_softmax(a[0], op["axis"])
    if n == "cross_entropy":
        return F.cross_entropy(a[0], torch.tensor(op["labels"]))
    if n == "bce_with_logits":
        return F.binary_cross_entropy_with_logits(a[0], a[1])
    if n == "mse_loss":
        return F.mse_loss(a[0], a[1])
    if n == "l1_loss":
        return F.l1_loss(a[0], a[1])
    if n == "batch_norm":
        # PyTorch's own batch_norm has no third derivative: the textbook formula instead.
        dims = [0] + list(range(2, a[0].dim()))
        stat = [1, -1] + [1] * (a[0].dim() - 2)
        mean = a[0].mean(dim=dims, keepdim=True)
        var = a[0].var(dim=dims, keepdim=True, unbiased=False)
        return (a[0] - mean) / torch.sqrt(var + op["eps"]) * a[1].reshape(stat) + a[2].reshape(stat)
    raise ValueError(n)


def directional(outs, dirs, xs, create_graph):
    total = None
    for o, d in zip(outs, dirs):
        if o.requires_grad:
            term = (o * d).sum()
            total = term if total is None else total + term
    if total is None:
        return [torch.zeros_like(x) for x in xs]
    gs = torch.autograd.grad(total, xs, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(gs, xs)]


def flat(t):
    """The values of t as a list (PyTorch's lazily-zero tensors have no storage to read)."""
    t = t.detach()
    if t._is_zerotensor():
        t = torch.zeros(t.shape)
    return t.flatten().tolist()


def torch_run(prog):
    leaves = [torch.tensor(i["values"]).reshape(i["shape"]).requires_grad_() for i in prog["inputs"]]
    vals = list(leaves)
    for op in prog["ops"]:
        vals.append(t_apply(op, vals))
    y = vals[-1]
    xs = [vals[i] for i in prog["wrt"]]
    order = prog["order"]
    out = {"y": flat(y)}
    u = torch.tensor(prog["u"]).reshape(y.shape)
    g1 = directional([y], [u], xs, order >= 2)
    out["g1"] = [flat(g) for g in g1]
    if order >= 2:
        v1 = [torch.tensor(v).reshape(x.shape) for v, x in zip(prog["v1"], xs)]
        g2 = directional(g1, v1, xs, order >= 3)
        out["g2"] = [flat(g) for g in g2]
        if order >= 3:
            v2 = [torch.tensor(v).reshape(x.shape) for v, x in zip(prog["v2"], xs)]
            g3 = directional(g2, v2, xs, False)
            out["g3"] = [flat(g) for g in g3]
    return out


def worst_error(ours, theirs):
    """max |a - b| / (1 + max |b|) over the value and every derivative."""
    worst = 0.0
    for key in ("y", "g1", "g2", "g3"):
        if key not in theirs:
            continue
        want, got = theirs[key], ours.get(key)
        if key == "y":
            want, got = [want], [got]
        if got is None or len(got) != len(want):
            return math.inf, f"{key}: missing or wrong count"
        for w, h in zip(want, got):
            if h is None or len(h) != len(w):
                return math.inf, f"{key}: wrong length"
            scale = 1.0 + max((abs(v) for v in w if math.isfinite(v)), default=0.0)
            for a, b in zip(h, w):
                a = math.nan if a is None else a
                if math.isnan(a) and math.isnan(b) or a == b:
                    continue
                err = abs(a - b) / scale
                if math.isnan(err):
                    return math.inf, f"{key}: NaN against {b}"
                worst = max(worst, err)
    return worst, ""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--programs", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--binary", help="a built `program` example (default: cargo run --release)")
    p.add_argument("--show", type=int, default=3, help="failing programs to print")
    args = p.parse_args()
    tol = 1e-9 if args.device == "cpu" else 1e-3

    rng = random.Random(args.seed)
    programs = [draw_program(i, rng, args.order) for i in range(args.programs)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [args.binary] if args.binary else [
        "cargo", "run", "--quiet", "--release", "--example", "program", "--"]
    cmd += ["--device", args.device]
    feed = "\n".join(json.dumps(pr) for pr in programs) + "\n"
    done = subprocess.run(cmd, input=feed, capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        sys.exit(f"ferrograd's evaluator failed: {done.stderr[-2000:]}")
    answers = {a.get("id"): a for a in map(json.loads, done.stdout.splitlines())}

    per_op = defaultdict(lambda: [0, 0.0])
    failures = []
    torch_cannot = defaultdict(int)
    for pr in programs:
        try:
            theirs = torch_run(pr)
        except RuntimeError as e:
            # PyTorch lacks some higher derivatives (e.g. conv_transpose2d with
            # output_padding at order 3): nothing to compare against.
            torch_cannot[str(e).split("\n")[0][:90]] += 1
            continue
        ours = answers.get(pr["id"], {"error": "no answer"})
        if "error" in ours:
            err, why = math.inf, "ferrograd: " + ours["error"]
        else:
            err, why = worst_error(ours, theirs)
        for op in {o["op"] for o in pr["ops"]}:
            per_op[op][0] += 1
            per_op[op][1] = max(per_op[op][1], err)
        if err > tol:
            failures.append((err, why, pr))

    print(f"{'op':<20} {'programs':>8} {'worst rel. error':>17}")
    for op in sorted(per_op):
        n, worst = per_op[op]
        print(f"{op:<20} {n:>8} {worst:>17.2e}")
    compared = len(programs) - sum(torch_cannot.values())
    print(f"{compared} programs compared, orders 1-{args.order}, {args.device}: "
          f"{len(failures)} differ by more than {tol:g}")
    for why, n in torch_cannot.items():
        print(f"  {n} not compared, PyTorch cannot: {why}")
    for err, why, pr in sorted(failures, key=lambda f: -f[0])[: args.show]:
        print(f"\nprogram {pr['id']} (error {err:.3e}) {why}\n  ops: {json.dumps(pr['ops'])}\n"
              f"  input shapes: {[i['shape'] for i in pr['inputs']]}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
