"""Timing of the activation theory and the optimizing schemes (issue 10's performance targets).

    python benchmarks/bench_schemes.py [--threads 2] [--steps-gradinit 390] [--steps-metainit 500]
                                       [--frameworks torch,nn]

* ``initlab.gain`` and ``initlab.analysis.depth_stability`` for a custom callable (target < 50 ms);
* GradInit and MetaInit with their default settings on a 20-layer MLP of width 256 (ReLU, 10
  classes; GradInit on 512 random samples, batch 64; MetaInit on random inputs of shape (32, 256)),
  target < 30 s on 2 cores. Prints one line per measurement with wall and CPU time (on a busy
  machine the CPU time of a one-thread run is the better estimate of a quiet machine's wall
  time); ``--steps-*`` shortens a run and the time is then also extrapolated to the default
  step count.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps-gradinit", type=int, default=390)
    ap.add_argument("--steps-metainit", type=int, default=500)
    ap.add_argument("--frameworks", default="torch,nn")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import initlab
    from initlab.analysis import depth_stability

    initlab.set_num_threads(a.threads)
    f = lambda x: x * np.tanh(np.log1p(np.exp(np.minimum(x, 30.0)))) + 0.05 * np.sin(x)  # noqa: E731
    for name, call in (("gain(custom callable)", lambda: initlab.gain(f)),
                       ("depth_stability(custom callable)", lambda: depth_stability(f, 1.4, 0.1))):
        call()
        ts = []
        for _ in range(20):
            t = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t)
        print(f"{name:40s} median {1e3 * np.median(ts):8.2f} ms  max {1e3 * max(ts):8.2f} ms  (target < 50 ms)")

    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 256))
    Y = rng.integers(0, 10, size=512)
    for fw in a.frameworks.split(","):
        for scheme, steps, default in (("gradinit", a.steps_gradinit, 390), ("metainit", a.steps_metainit, 500)):
            if fw == "torch":
                import torch

                torch.set_num_threads(a.threads)
                torch.manual_seed(0)
                layers = []
                for _ in range(20):
                    layers += [torch.nn.Linear(256, 256), torch.nn.ReLU()]
                model = torch.nn.Sequential(*layers, torch.nn.Linear(256, 10))
                data = (torch.tensor(X, dtype=torch.float32), torch.tensor(Y))
            else:
                model = initlab.nn.mlp(256, 256, 20, 10, seed=0)
                data = (X, Y)
            t, c = time.perf_counter(), time.process_time()
            if scheme == "gradinit":
                rep = initlab.schemes.gradinit(model, data, steps=steps, seed=0)
            else:
                rep = initlab.schemes.metainit(model, (32, 256), steps=steps, seed=0)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            extra = (f"  (-> {dt * default / steps:.1f} s wall, {dc * default / steps:.1f} s CPU for the default "
                     f"{default} steps)" if steps != default else "")
            print(f"{scheme} {fw:5s} 20x256 MLP {steps:4d} steps {dt:8.2f} s wall {dc:8.2f} s CPU on {a.threads} "
                  f"threads{extra}  "
                  f"objective {rep.objective[0]:.4g} -> {rep.objective[-1]:.4g}  (target < 30 s)")


if __name__ == "__main__":
    main()
