"""The VAE at batch 32 as a plain loop (benchmarks/vae_ceiling.py): eager with fused Adam; with
its forward compiled; and the whole step (forward, backward, Adam) in one torch.compile, with
compiled autograd, with fused Adam ("whole") and with foreach Adam ("compiled-opt"). Run from the
repository root: python benchmarks/results/throughput-2026-11-28-avx2/whole_step.py"""

import sys
import time

import torch

sys.path.insert(0, "benchmarks")
from throughput import ReferenceLoop  # noqa: E402
from vae_ceiling import PlainLoop  # noqa: E402

from aevb import process  # noqa: E402

BATCH = 32


class Variant(PlainLoop):
    """PlainLoop's network and data, its step run one of four ways."""

    def __init__(self, mode: str):
        self.mode = "eager"  # PlainLoop's constructor takes two eager steps
        super().__init__(BATCH, fused=mode != "compiled-opt")
        self.mode = mode
        if mode == "fwd":
            self.compiled = torch.compile(super().loss, dynamic=False)
        elif mode in ("whole", "compiled-opt"):
            torch._dynamo.config.compiled_autograd = True  # backward() inside a compiled function
            self.compiled = torch.compile(self.whole_step, dynamic=False)

    def whole_step(self, x: torch.Tensor) -> torch.Tensor:
        loss = super().loss(x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.compiled(x) if self.mode == "fwd" else super().loss(x)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode in ("whole", "compiled-opt"):
            return self.compiled(x)
        return super().step(x)  # PlainLoop's: self.loss, then Adam


def main() -> None:
    process.configure()
    loops = {}
    for mode in ("eager", "fwd", "whole", "compiled-opt"):
        start = time.time()
        loops[mode] = Variant(mode)
        loops[mode].run(5)
        print(mode, "built", round(time.time() - start, 1), "s", flush=True)
    loops["ref"] = ReferenceLoop("vae", BATCH, torch.device("cpu"))
    steps = {key: 100 if key == "ref" else 200 for key in loops}
    spent = dict.fromkeys(loops, 0.0)
    for _ in range(5):  # interleaved turns
        for key, loop in loops.items():
            start = time.perf_counter()
            loop.run(steps[key])
            spent[key] += time.perf_counter() - start
    rate = {key: 5 * steps[key] * BATCH / spent[key] for key in loops}
    for key, r in rate.items():
        print(f"{key:12s} {r:8,.0f} img/s  {r / rate['ref']:.2f}x")


if __name__ == "__main__":
    main()
