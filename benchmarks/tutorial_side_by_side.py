"""The tutorial's own trained VAE and CVAE beside aevb's models, on one yardstick.

Rebuilds the tutorial's networks (the architecture its weights' README gives) as aevb's `vae` and
`cvae` with the tutorial's learned prior, loads its weights, and scores them with aevb's evaluation
next to aevb's shipped models: the same 10,000 dequantized test images, the same seeded draws, the
continuous Bernoulli's exact normaliser. Prints one table in nats per image and, as the bound on
the 8-bit images, in bits per dimension (docs: Concepts). The weights are for comparison only and
are never shipped.

    python benchmarks/tutorial_side_by_side.py --weights WEIGHTS --data-dir DIR
    python benchmarks/tutorial_retrain.py --data-dir DIR --out runs/tutorial-retrained
    python benchmarks/tutorial_side_by_side.py --weights WEIGHTS \
        --data-dir DIR --retrained runs/tutorial-retrained --iwae-samples 1000

`--retrained DIR` adds the tutorial's recipes trained again by its notebooks' code
(`tutorial_retrain.py`, which writes DIR in the layout of the tutorial's files).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from aevb.data import load
from aevb.evaluate import evaluate
from aevb.models import registry
from aevb.reports.console import bits_per_dim
from aevb.runs import load_model

SHIPPED = {"vae": ["vae-mnist"], "cvae": ["cvae-tutorial-mnist", "cvae-mnist"]}


def tutorial_model(name: str, weights: Path) -> torch.nn.Module:
    """The tutorial's VAE or CVAE as the aevb model of the same architecture, holding its weights."""
    t = load_file(weights / f"{name}.safetensors")
    cls = registry.get(name)
    options = {"latent_dim": 20, "hidden": 500, "layers": 2, "dropout": 0.1,
               "likelihood": "continuous-bernoulli", **({"prior": "learned"} if name == "cvae" else {})}
    q, p = ("q_z_given_x", "p_x_given_z") if name == "vae" else ("q_z_given_x_y", "p_x_given_z_y")
    first = t[f"{p}.lambdas.0.weight"]  # (500, Dz) or (500, C + Dz)
    if name == "cvae":  # the tutorial's decoder reads [y, z], aevb's [z, y]
        first = torch.cat([first[:, 10:], first[:, :10]], 1)
    state = {
        "encoder.0.weight": t[f"{q}.shared.0.weight"], "encoder.0.bias": t[f"{q}.shared.0.bias"],
        "encoder.3.weight": t[f"{q}.shared.3.weight"], "encoder.3.bias": t[f"{q}.shared.3.bias"],
        "q_head.mean.weight": t[f"{q}.mus.weight"], "q_head.mean.bias": t[f"{q}.mus.bias"],
        "q_head.std.weight": t[f"{q}.sigmas.0.weight"], "q_head.std.bias": t[f"{q}.sigmas.0.bias"],
        "decoder.0.weight": first, "decoder.0.bias": t[f"{p}.lambdas.0.bias"],
        "decoder.3.weight": t[f"{p}.lambdas.3.weight"], "decoder.3.bias": t[f"{p}.lambdas.3.bias"],
        "px_head.out.weight": t[f"{p}.lambdas.6.weight"], "px_head.out.bias": t[f"{p}.lambdas.6.bias"],
    }
    if name == "cvae":
        state |= {"p_z.mean.weight": t["p_z_given_y.mus.weight"], "p_z.mean.bias": t["p_z_given_y.mus.bias"],
                  "p_z.std.weight": t["p_z_given_y.sigmas.0.weight"],
                  "p_z.std.bias": t["p_z_given_y.sigmas.0.bias"]}
    model = cls(cls.Config(**options), (784,), 10 if name == "cvae" else None)
    model.load_state_dict(state)  # strict: every tensor of the architecture, and no other
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True, help="the folder holding vae.safetensors and "
                   "cvae.safetensors (the tutorial's weights)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--dataset", default="mnist", help="mnist, or mnist-sample for a quick check")
    p.add_argument("--elbo-samples", type=int, default=100)
    p.add_argument("--iwae-samples", type=int, default=0)
    p.add_argument("--subset", type=int, default=None, help="only the first N test images")
    p.add_argument("--retrained", type=Path, default=None, help="the folder `tutorial_retrain.py` wrote")
    p.add_argument("--run", action="append", default=[], metavar="LABEL=RUN",
                   help="another run to score beside them, e.g. the tutorial's recipe retrained")
    args = p.parse_args()
    data = load(args.dataset, args.data_dir, "dequantize")
    entries = []
    for name in ("vae", "cvae"):
        entries.append((f"the tutorial's {name.upper()} (its shipped weights)", name,
                        tutorial_model(name, args.weights)))
        if args.retrained:
            epochs = json.loads((args.retrained / "log.json").read_text())[name]["epochs"]
            label = f"the tutorial's {name.upper()} retrained by its notebook's code ({epochs} epochs)"
            entries.append((label, name, tutorial_model(name, args.retrained)))
        entries += [(f"aevb `{s}`", name, load_model(f"pretrained:{s}")[0]) for s in SHIPPED[name]]
    for item in args.run:
        label, run = item.split("=", 1)
        model = load_model(run)[0]
        entries.append((label, model.name, model))
    header = "| model | log p(x) of | test ELBO (nats) | bits/dim |"
    if args.iwae_samples:
        header += f" IWAE_{args.iwae_samples} (nats) | bits/dim |"
    print(header)
    print("| --- " * (header.count("|") - 1) + "|")
    for label, name, model in entries:
        m = evaluate(model, data, "test", 500, args.iwae_samples, seed=0, elbo_samples=args.elbo_samples,
                     subset=args.subset)
        row = (f"| {label} | {'x' if name == 'vae' else 'x given its label'} | {m['elbo']:.2f} (s.e. "
               f"{m['elbo_se']:.2f}) | {bits_per_dim(m['elbo'], 784, 'dequantize'):.4f} |")
        if args.iwae_samples:
            row += (f" {m['iwae']:.2f} (s.e. {m['iwae_se']:.2f}) | "
                    f"{bits_per_dim(m['iwae'], 784, 'dequantize'):.4f} |")
        print(row, flush=True)
    print(f"\n{m['n']} test images; {args.elbo_samples} draws of z per image in the ELBO")


if __name__ == "__main__":
    main()
