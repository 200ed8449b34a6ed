"""Build a source model from its recipe with pinned CPU kernels: the weights that ship with the package.

    python -m trainables.source_build --out FILE [--arch A --images N --iters K] [--ship]

Without --arch/--images/--iters: the embedded default's recipe (a trial's default source).

One thread and the AVX2 code paths of ATen, oneDNN and MKL (MKL's conditional numerical reproducibility),
whatever the CPU offers: a float32 training run of 3,000 steps otherwise ends in different bits on a CPU whose
fastest kernels differ (AVX-512 vs AVX2), and the shipped digest could not be checked by a rebuild. Those
libraries read their settings when torch loads, so the command re-executes itself with them before importing
torch. `--ship` also writes the file and its digest into the package's shipped sources.
"""
import argparse
import json
import os
import sys
from pathlib import Path

# ATen's vectorised kernels, oneDNN's convolutions, MKL's GEMM: each at its AVX2 path, on one thread.
PINNED_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
                  "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainables.source_build", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="where to write the state dict (torch.save)")
    parser.add_argument("--arch")
    parser.add_argument("--images", type=int)
    parser.add_argument("--iters", type=int)
    parser.add_argument("--ship", action="store_true", help="also record it as the package's shipped source")
    return parser.parse_args(argv)


def kernels_pinned() -> bool:
    return all(os.environ.get(name) == value for name, value in PINNED_KERNELS.items())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not kernels_pinned():
        os.execve(sys.executable, [sys.executable, "-m", "trainables.source_build", *argv],
                  {**os.environ, **PINNED_KERNELS})
    import torch

    from trainables.config import resolve_config
    from trainables.models.weights import state_digest
    from trainables.source import SHIPPED_DIGESTS, SHIPPED_SOURCES, pretrain, source_cache_file, source_recipe

    default = resolve_config({"method": "finetune"})
    recipe = source_recipe(args.arch or default.arch, args.images or default.source_images,
                           args.iters or default.source_iters)
    state = pretrain(recipe)
    out = Path(args.out)
    partial = out.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, out)
    digest = state_digest(state)
    print(f"{out}: digest {digest} (kernels {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__})")
    if args.ship:
        name = source_cache_file(recipe).name
        torch.save(state, SHIPPED_SOURCES / name)
        digests = json.loads(SHIPPED_DIGESTS.read_text()) if SHIPPED_DIGESTS.is_file() else {}
        SHIPPED_DIGESTS.write_text(json.dumps({**digests, name: digest}, indent=2) + "\n")
        print(f"shipped as {SHIPPED_SOURCES / name}")


if __name__ == "__main__":
    main()
