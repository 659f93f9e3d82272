"""Benchmark of the numeric backend; writes BENCHMARKS.md at the repository root.

    python benchmarks/bench_simulator.py [--device cpu|cuda] [--output BENCHMARKS.md]

Measures, in one run:
1. reduced vs full-vocabulary gradient-descent step time at V in {2, 1000, 32000}, checking identical margins;
2. 64 small trials batched into one tensor program vs a Python loop over seeds (sampling + training);
3. reduced-step throughput (feature bytes read per second, two reads per step) vs a memory-copy bandwidth
   measured in the same run (STREAM convention: bytes read + bytes written per second), at N d = 1e8, float32;
4. peak memory of a reduced step at N = 1e5, d = 4096, float32, in a fresh subprocess.

A step time is the best of a few repeats of a run of steps, after one warm-up step; the steps are
built from the same functions the trainers call. The machine's load average is recorded: on a shared
machine, other processes inflate every time and starve multi-threaded kernels.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verify.data_model import DiverseValueDistribution, disjoint_tokens  # noqa: E402
from theory.losses import DPO  # noqa: E402
from verify.symbolic import weight_function  # noqa: E402
from verify.training import (FullVocabularyTrial, gradient_descent, segment_gradient, segment_margins,  # noqa: E402
                             training_set)


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def reduced_step(sample, beta, eta, loss=DPO):
    """One reduced GD step (both passes and the update), as `gradient_descent` runs it."""
    data = training_set(sample)
    weight = weight_function(loss)
    delta = torch.zeros(data.batch_size, len(data.rows), data.features.shape[2], dtype=data.features.dtype, device=data.features.device)
    def step():
        delta.sub_(eta * segment_gradient(data, weight(segment_margins(data, delta, beta)), beta))
    return step


def full_step(sample, W0, beta, eta, loss=DPO):
    """One full-vocabulary GD step (log-softmax over V, autograd, update), as `gradient_descent(form="full")` runs it."""
    data = training_set(sample)
    trial = FullVocabularyTrial(data.features[0], data.chosen, data.rejected, W0, beta, loss)
    W = W0.clone()
    def step():
        W.sub_(eta * trial.gradient(W)[0])
    return step


def step_time(step, device, steps, repeats=3) -> float:
    step()  # warm-up
    return best_time(lambda: [step() for _ in range(steps)], device, repeats) / steps


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device) -> list[str]:
    lines = [f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores, torch threads: {torch.get_num_threads()}",
             f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()} {platform.release()}"]
    try:
        mem = [l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")][0]
        lines.append(f"- RAM: {int(mem.split()[1]) / 2**20:.1f} GiB")
    except (OSError, IndexError):
        pass
    lines.append(f"- load average at the end of the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if torch.device(device).type == "cuda":
        lines.append(f"- GPU: {torch.cuda.get_device_name()}")
    lines.append(f"- device used: {device}")
    return lines


def bench_vocabulary(device) -> list[dict]:
    """Row 1: reduced vs full step time; both forms from the same sample and W0, margins compared."""
    dist = DiverseValueDistribution(K=1, d=512, v=0.05, l_b=0.3, tokens=disjoint_tokens(1))
    sample = dist.sample([0], Q=512, device=device)  # N = 1024, float64
    rows = []
    for V in (2, 1000, 32000):
        W0 = torch.randn(V, dist.d, generator=torch.Generator().manual_seed(V), dtype=torch.float64).to(device) / dist.d**0.5
        kw = dict(beta=0.01, eta=100.0, W0=W0)
        reduced = gradient_descent(sample, steps=3, **kw)
        full = gradient_descent(sample, steps=3, form="full", **kw)
        agreement = float((reduced.train_margins - full.train_margins).abs().max())
        t_reduced = step_time(reduced_step(sample, 0.01, 100.0), device, steps=50)
        t_full = step_time(full_step(sample, W0, 0.01, 100.0), device, steps=1 if V > 2000 else 5, repeats=2)
        rows.append(dict(V=V, N=sample.size, d=dist.d, reduced_s=t_reduced, full_s=t_full, ratio=t_full / t_reduced,
                         target=V / 25, agreement=agreement))
        print(rows[-1], flush=True)
    return rows


def bench_batching(device) -> dict:
    """Row 2: 64 small trials (K = 2, Q = 8, d = 16, 200 GD steps), sampling included."""
    dist = DiverseValueDistribution(K=2, d=16, v=0.1, l_b=0.3)
    seeds = list(range(64))
    kw = dict(beta=1.0, eta=0.5, steps=200, record=[0, 200])

    def batched():
        return gradient_descent(dist.sample(seeds, Q=8, device=device), **kw)

    def loop():
        return [gradient_descent(dist.sample(s, Q=8, device=device), **kw) for s in seeds]

    together, one_by_one = batched(), loop()
    difference = max(float((together.train_margins[b] - r.train_margins[0]).abs().max()) for b, r in enumerate(one_by_one))
    t_batch = best_time(batched, device)
    t_loop = best_time(loop, device, repeats=2)
    out = dict(trials=64, batched_s=t_batch, loop_s=t_loop, ratio=t_loop / t_batch, target=10.0, difference=difference)
    print(out, flush=True)
    return out


def copy_bandwidth(nbytes: int, device) -> float:
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    t = best_time(lambda: dst.copy_(src), device, repeats=5)
    return 2 * nbytes / t  # read + write


def bench_bandwidth(device) -> list[dict]:
    """Row 3: N d = 1e8 float32 (400 MB), few and many distinct token pairs."""
    out = []
    for K, Q, d in ((2, 6250, 4096), (500, 25, 4096)):
        dist = DiverseValueDistribution(K=K, d=d, v=0.05, l_b=0.3)
        sample = dist.sample([0], Q=Q, device=device, dtype=torch.float32)
        nbytes = sample.features.numel() * 4
        bandwidth = copy_bandwidth(nbytes, device)
        t = step_time(reduced_step(sample, 0.01, 1.0), device, steps=3)
        read_rate = 2 * nbytes / t
        out.append(dict(K=K, pairs=2 * K, N=sample.size, d=d, step_s=t, read_GBps=read_rate / 1e9,
                        copy_GBps=bandwidth / 1e9, fraction=read_rate / bandwidth, target=0.5))
        print(out[-1], flush=True)
        del sample
    return out


MEMORY_CHILD = r"""
import json, resource, sys, torch
sys.path.insert(0, sys.argv[1])
from verify.data_model import DiverseValueDistribution
from verify.training import gradient_descent
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
before = rss()
sample = DiverseValueDistribution(K=2, d=4096, v=0.05, l_b=0.3).sample([0], Q=25000, dtype=torch.float32)
after_sample = rss()
gradient_descent(sample, beta=0.01, eta=1.0, steps=2)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(features=sample.features.numel() * 4, before=before, after_sample=after_sample, peak=peak)))
"""


def bench_memory() -> dict:
    """Row 4: peak RSS of sampling + a reduced step at N = 1e5, d = 4096, float32 (CPU only)."""
    result = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ROOT)], capture_output=True, text=True, check=True)
    m = json.loads(result.stdout.strip().splitlines()[-1])
    m["increment_over_features"] = (m["peak"] - m["before"]) / m["features"]
    m["step_extra_over_features"] = (m["peak"] - m["after_sample"]) / m["features"]
    print(m, flush=True)
    return m


def verdict(value, target, larger_is_better=True) -> str:
    met = value >= target if larger_is_better else value <= target
    return f"met ({value / target:.2f}x target)" if met else f"NOT met ({value / target:.2f}x target)"


def write_report(path: Path, device, vocab, batching, bandwidth, memory, seconds):
    lines = ["# Benchmarks: numeric backend", "", f"Written by `benchmarks/bench_simulator.py` in {seconds:.0f} s.", "",
             "## Machine", "", *machine(device), "",
             "## 1. Reduced vs full-vocabulary gradient-descent step (float64, K = 1, N = 1024, d = 512)", "",
             "Target: full / reduced >= V/25 at V = 32000. Max |margin difference| over 3 steps shows the forms agree.", "",
             "| V | reduced step (s) | full step (s) | full / reduced | V/25 | max margin difference | verdict (target at V = 32000 only) |",
             "|---|---|---|---|---|---|---|"]
    for r in vocab:
        lines.append(f"| {r['V']} | {r['reduced_s']:.2e} | {r['full_s']:.2e} | {r['ratio']:.0f} | {r['target']:.2f} | "
                     f"{r['agreement']:.1e} | {verdict(r['ratio'], r['target']) if r['V'] == 32000 else 'no target at this V'} |")
    b = batching
    lines += ["", "## 2. Batched trials vs a Python loop over seeds", "",
              f"{b['trials']} trials, K = 2, Q = 8, d = 16, 200 GD steps, sampling included. Target: >= 10x.", "",
              "| batched (s) | loop (s) | loop / batched | max margin difference | verdict |", "|---|---|---|---|---|",
              f"| {b['batched_s']:.3f} | {b['loop_s']:.3f} | {b['ratio']:.1f} | {b['difference']:.1e} | {verdict(b['ratio'], 10.0)} |",
              "", "## 3. Reduced-step throughput vs copy bandwidth (float32, N d = 1e8, 400 MB of features)", "",
              "Feature bytes read per second = 2 N d 4 / step time (two passes). Copy bandwidth = (bytes read + bytes written) "
              "per second of `dst.copy_(src)` on a buffer of the same size (STREAM convention). Target: >= 50%.", "",
              "| K | (y_w, y_l) pairs | N | d | step (s) | read GB/s | copy GB/s | fraction | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in bandwidth:
        lines.append(f"| {r['K']} | {r['pairs']} | {r['N']} | {r['d']} | {r['step_s']:.3f} | {r['read_GBps']:.2f} | "
                     f"{r['copy_GBps']:.2f} | {r['fraction']:.0%} | {verdict(r['fraction'], 0.5)} |")
    if memory is not None:
        m = memory
        lines += ["", "## 4. Memory: N = 1e5, d = 4096, float32 (sampling + 2 reduced GD steps, fresh process)", "",
                  "Target: at most twice the feature matrix. Peak RSS from `getrusage`, baseline from `/proc/self/statm` after imports.", "",
                  "| features (GB) | peak RSS - baseline (GB) | ratio to features | step's extra over the sampled features | verdict |",
                  "|---|---|---|---|---|",
                  f"| {m['features'] / 1e9:.2f} | {(m['peak'] - m['before']) / 1e9:.2f} | {m['increment_over_features']:.2f} | "
                  f"{m['step_extra_over_features']:.2f} | {verdict(2.0, m['increment_over_features'])} |"]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    vocab = bench_vocabulary(args.device)
    batching = bench_batching(args.device)
    bandwidth = bench_bandwidth(args.device)
    memory = bench_memory() if torch.device(args.device).type == "cpu" else None
    write_report(Path(args.output), args.device, vocab, batching, bandwidth, memory, time.perf_counter() - start)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
