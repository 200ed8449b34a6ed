"""The `code` attack preset's box: the authors' scalar [-2.2, 2.2] after ImageNet normalisation vs [0, 1] pixels.

    .venv/bin/python benchmarks/attack_box.py [--threads 1] [--attack-iters N] [--test-per-class 8]

The authors' eval_robustness.py runs AdverTorch's LinfPGDAttack with clip_min=-2.2, clip_max=2.2 on normalised
inputs. In pixels that box is R [-0.019, 0.989], G [-0.037, 0.949], B [-0.089, 0.901]: dark pixels may go a
little below black, and bright pixels are clipped even before PGD moves them. This script measures the
test-split ASR of trained models under the `code` preset with the authors' box and with the same preset clipped
to [0, 1] pixels instead (everything else equal: loss, B = 0.1 and step 0.01 normalised, 40 iterations, seed 0),
through the real crafting and scoring code (trainables.adversarial_set, trainables.robustness). Per model it
prints clean accuracy, the images counted (test images / correctly classified ones, ASR's denominator), the ASR
under each box and their difference, the noise control under each box, and "clip only": the ASR of the clean
images merely clipped to the authors' box (no perturbation), with the share of clean pixels outside it.

(a) the embedded default: novel_shapes (32 px, 1,000 test images), its shipped source model (resnet18_w32),
a fine-tuned and a Renofeation model on short schedules. (b) a 224 px image folder (the paper datasets'
pipeline: resize 256, centre crop 224) of rendered novel shapes at 256 px, 3 classes, with a random-init
torchvision resnet18 as the --weights source (nothing can be downloaded here); a linear probe and a fine-tuned
model. The tiny layouts of tests/layouts.py hold 4-6 solid-colour test images that never reach the box's top,
so (b) writes the same ImageFolder layout with more, textured images.
"""
import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torchvision
from PIL import Image

from trainables.adversarial_set import AdversarialSet, AdversarialSetSpec, adversarial_set
from trainables.attack import box_in_pixels, clamp_to_box
from trainables.attack_presets import AttackConfig, attack_config
from trainables.config import resolve_config
from trainables.data.synthetic import generate_shapes
from trainables.evaluation import attack_counts
from trainables.robustness import split_metrics
from trainables.trial import prepare_run

IMAGE_FOLDER_CLASSES = (("star", "dots"), ("hexagon", "dstripes"), ("crescent", "checker"))


def box_variants(attack_iters: int | None) -> dict[str, AttackConfig]:
    authors = attack_config("code", iters=attack_iters)
    return {"authors": authors, "pixels": replace(authors, box="pixels", box_min=0.0, box_max=1.0)}


def trained_model(config: dict):
    run = prepare_run(resolve_config(config))
    for _ in run.reports():
        pass
    return run.evaluation_model().eval()


@torch.no_grad()
def clip_only(model, crafted: AdversarialSet, box: tuple) -> tuple[float, float]:
    """ASR of the clean images clipped to `box` (no attack), and the share of clean pixels the clip moves."""
    labels, clean, clipped, moved, pixels = [], [], [], 0, 0
    for images, _, _, batch_labels in crafted.scoring_batches(torch.device("cpu")):
        inside = clamp_to_box(images, box)
        moved, pixels = moved + int((inside != images).sum()), pixels + images.numel()
        labels.append(batch_labels)
        clean.append(model(images).argmax(1))
        clipped.append(model(inside).argmax(1))
    counts = attack_counts(torch.cat(labels), torch.cat(clean), torch.cat(clipped))
    return counts.asr, 100 * moved / pixels


def measure(setting: str, trial: dict, models: dict, attack_iters: int | None) -> None:
    """Craft the test split under each box once, score every model on both, print one row per model."""
    crafted = {name: adversarial_set(AdversarialSetSpec.from_trial(resolve_config(trial), attack, "test"))
               for name, attack in box_variants(attack_iters).items()}
    authors_box = box_in_pixels(crafted["authors"].attack, crafted["authors"].pretrained.mean,
                                crafted["authors"].pretrained.std)
    for name, model in models.items():
        rows = {box: split_metrics(model, sets, torch.device("cpu")) for box, sets in crafted.items()}
        clipped_asr, moved = clip_only(model, crafted["authors"], authors_box)
        authors, pixels = rows["authors"], rows["pixels"]
        print(f"| {setting} | {name} | {authors['test_clean_acc']:.1f} | {authors['test_images']} / "
              f"{authors['test_clean_correct']} | {authors['test_asr']:.1f} | {pixels['test_asr']:.1f} | "
              f"{authors['test_asr'] - pixels['test_asr']:+.1f} | {authors['test_noise_asr']:.1f} / "
              f"{pixels['test_noise_asr']:.1f} | {clipped_asr:.1f} ({moved:.2f} % of pixels) |", flush=True)


def embedded_default(scratch: Path, attack_iters: int | None) -> None:
    base = {"dataset": "novel_shapes", "cache_dir": str(scratch / "cache"), "seed": 0}
    models = {
        "finetune, 300 it": trained_model({**base, "method": "finetune", "iters": 300, "eval_every": 300}),
        "renofeation, 300 + 100 SWA it": trained_model({**base, "method": "renofeation", "iters": 300,
                                                         "swa_iters": 100, "eval_every": 100}),
    }
    measure("novel_shapes 32 px", {**base, "method": "finetune"}, models, attack_iters)


def write_image_folder(root: Path, train_per_class: int, test_per_class: int) -> Path:
    """root/{train,test}/<class>/<n>.jpg: rendered novel shapes at 256 px (colours span the whole [0, 1] range)."""
    for split, per_class, seed in (("train", train_per_class, 1), ("test", test_per_class, 2)):
        images, labels = generate_shapes(per_class * len(IMAGE_FOLDER_CLASSES), seed, 256, IMAGE_FOLDER_CLASSES)
        for number, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / "_".join(IMAGE_FOLDER_CLASSES[label])
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{number}.jpg", quality=95)
    return root


def layout_224(scratch: Path, attack_iters: int | None, test_per_class: int) -> None:
    torch.manual_seed(0)
    weights = scratch / "resnet18_random.pt"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    base = {"dataset": "imagefolder", "data_root": str(write_image_folder(scratch / "folder", 16, test_per_class)),
            "arch": "resnet18", "weights": str(weights), "val_fraction": 0.0, "batch_size": 16, "num_workers": 0,
            "cache_dir": str(scratch / "cache"), "seed": 0}
    models = {
        "linear probe, 40 it": trained_model({**base, "method": "linear", "iters": 40, "eval_every": 40,
                                              "lr": 0.05}),
        "finetune, 20 it": trained_model({**base, "method": "finetune", "iters": 20, "eval_every": 20}),
    }
    measure("imagefolder 224 px", {**base, "method": "finetune"}, models, attack_iters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--attack-iters", type=int, help="PGD iterations (default: the preset's 40)")
    parser.add_argument("--test-per-class", type=int, default=8, help="224 px test images per class (3 classes)")
    parser.add_argument("--only", choices=("embedded", "224"), help="run one of the two settings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| setting | model | clean % | test images / clean-correct | ASR authors' box % | ASR [0, 1] box % | "
          "difference (points) | noise ASR authors / [0, 1] % | clip only ASR % |")
    print("|---|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        if args.only != "224":
            embedded_default(Path(scratch), args.attack_iters)
        if args.only != "embedded":
            layout_224(Path(scratch), args.attack_iters, args.test_per_class)
    print(f"{time.perf_counter() - start:.0f} s, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
