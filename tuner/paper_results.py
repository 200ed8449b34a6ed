"""The paper's published numbers (Chin, Zhang & Marculescu, Tables 2, 4, 5, 6 and 7) as plain data.

Every row is labelled the way `row_label` labels a measured result, so the two can be matched: the method's
name, then `+DO` / `+SWA` where spatial dropout / SWA is switched on against the method's default (and `-DO` /
`-SWA` where it is switched off against it). Table 7 calls DELTA-R + DO + SWA "Renofeation"; it is labelled
`delta_r+DO+SWA` here, the run the ablation recipe makes (its numbers equal the `renofeation` rows of the other
tables). Table 4's AVERAGE column is left out: it is derived, not measured.
"""
from dataclasses import dataclass

from trainables.data.specs import PAPER_DATASETS
from trainables.methods import METHODS

DATASETS = PAPER_DATASETS  # the paper's column order


@dataclass(frozen=True)
class PaperResult:
    table: str
    label: str
    dataset: str
    arch: str
    fraction: float
    clean: float  # top-1 accuracy on clean test images, %
    asr: float  # attack success rate, %
    feature_loss: float | None = None  # Table 7 only


def _rows(table: str, label: str, clean: tuple[float, ...], asr: tuple[float, ...], arch: str = "resnet18",
          fraction: float = 1.0, feature_loss: tuple[float, ...] | None = None) -> tuple[PaperResult, ...]:
    """One method's row pair (CLEAN, ASR and maybe FEATURE LOSS), one value per dataset in the paper's order."""
    losses = feature_loss or (None,) * len(DATASETS)
    return tuple(PaperResult(table, label, dataset, arch, fraction, c, a, f)
                 for dataset, c, a, f in zip(DATASETS, clean, asr, losses, strict=True))


PAPER_RESULTS: tuple[PaperResult, ...] = (
    # Table 2: the baseline transfer methods, ResNet-18.
    *_rows("table2", "linear", (84.22, 67.02, 73.64, 72.54, 88.52), (96.06, 96.47, 92.49, 88.95, 86.40)),
    *_rows("table2", "finetune", (81.84, 77.67, 77.19, 75.37, 95.71), (89.36, 50.33, 73.75, 54.75, 14.07)),
    *_rows("table2", "l2sp", (83.82, 77.51, 77.22, 75.15, 95.63), (94.08, 50.08, 92.16, 66.73, 16.75)),
    *_rows("table2", "delta", (84.39, 78.75, 77.69, 78.36, 95.90), (95.65, 58.83, 93.51, 79.71, 43.65)),
    *_rows("table2", "retrain", (70.77, 69.76, 51.90, 59.93, 87.38), (5.99, 6.14, 5.82, 6.73, 3.00)),
    # Table 4: DELTA, Renofeation and re-training across backbones.
    *_rows("table4", "delta", (84.39, 78.75, 77.69, 78.36, 95.90), (95.65, 58.83, 93.51, 79.71, 43.65)),
    *_rows("table4", "renofeation", (78.11, 79.03, 79.07, 76.79, 95.59), (9.83, 3.41, 7.16, 11.08, 2.86)),
    *_rows("table4", "retrain", (70.77, 69.76, 51.90, 59.93, 87.38), (5.99, 6.14, 5.82, 6.73, 3.00)),
    *_rows("table4", "delta", (90.13, 81.95, 81.87, 79.93, 96.63), (94.69, 32.29, 91.94, 84.69, 24.84),
           arch="resnet50"),
    *_rows("table4", "renofeation", (83.57, 79.27, 84.04, 80.67, 96.75), (5.08, 3.96, 3.33, 7.12, 2.39),
           arch="resnet50"),
    *_rows("table4", "retrain", (72.55, 70.47, 53.53, 59.11, 85.93), (6.30, 7.45, 6.11, 6.06, 2.20),
           arch="resnet50"),
    *_rows("table4", "delta", (91.92, 82.07, 82.61, 80.00, 96.37), (88.03, 42.60, 87.53, 89.27, 44.04),
           arch="resnet101"),
    *_rows("table4", "renofeation", (83.88, 80.98, 84.67, 80.97, 96.33), (4.38, 3.54, 3.69, 9.95, 3.09),
           arch="resnet101"),
    *_rows("table4", "retrain", (73.42, 71.80, 52.78, 61.12, 85.59), (6.64, 7.21, 6.64, 5.13, 2.00),
           arch="resnet101"),
    *_rows("table4", "delta", (84.86, 78.51, 78.94, 76.12, 96.68), (82.89, 40.30, 57.00, 52.45, 21.08),
           arch="mobilenet_v2"),
    *_rows("table4", "renofeation", (76.42, 75.70, 77.78, 76.49, 96.32), (11.62, 6.79, 5.92, 7.12, 2.84),
           arch="mobilenet_v2"),
    *_rows("table4", "retrain", (67.95, 69.50, 52.86, 61.49, 88.73), (8.56, 8.54, 8.35, 7.65, 2.71),
           arch="mobilenet_v2"),
    # Table 5: 33% and 66% of the training images per class, ResNet-18.
    *_rows("table5", "delta", (81.80, 63.41, 70.72, 70.97, 90.11), (95.77, 74.12, 93.94, 85.38, 46.60),
           fraction=0.33),
    *_rows("table5", "renofeation", (74.13, 61.75, 69.22, 70.22, 88.32), (10.88, 5.56, 9.40, 15.73, 4.94),
           fraction=0.33),
    *_rows("table5", "retrain", (44.98, 26.10, 24.51, 37.54, 62.73), (9.67, 14.68, 9.22, 8.35, 2.85),
           fraction=0.33),
    *_rows("table5", "delta", (83.58, 73.04, 75.52, 75.30, 94.23), (95.36, 64.58, 93.80, 80.77, 56.39),
           fraction=0.66),
    *_rows("table5", "renofeation", (77.25, 74.46, 76.09, 74.48, 93.56), (9.85, 3.55, 7.53, 12.22, 4.73),
           fraction=0.66),
    *_rows("table5", "retrain", (64.03, 56.47, 40.73, 52.61, 80.60), (7.72, 10.79, 5.86, 7.23, 3.23),
           fraction=0.66),
    # Table 6: adversarially trained DELTA against Renofeation, ResNet-18.
    *_rows("table6", "delta", (84.39, 78.75, 77.69, 78.36, 95.90), (95.65, 58.83, 93.51, 79.71, 43.65)),
    *_rows("table6", "delta_adv", (82.83, 77.10, 75.69, 77.84, 95.12), (85.86, 16.77, 85.19, 61.84, 23.85)),
    *_rows("table6", "delta_adv+DO+SWA", (81.42, 80.20, 79.12, 78.28, 96.81), (53.03, 8.93, 63.72, 36.60, 4.92)),
    *_rows("table6", "renofeation", (78.11, 79.03, 79.07, 76.79, 95.59), (9.83, 3.41, 7.16, 11.08, 2.86)),
    # Table 7: DELTA-R with dropout and SWA, with the feature-distillation loss, ResNet-18.
    *_rows("table7", "delta_r", (82.49, 77.58, 76.79, 77.39, 94.49), (37.93, 7.28, 60.83, 38.48, 14.30),
           feature_loss=(0.70, 1.48, 0.72, 0.68, 0.56)),
    *_rows("table7", "delta_r+DO", (81.21, 77.72, 78.00, 77.31, 95.35), (17.91, 4.24, 18.98, 22.30, 7.44),
           feature_loss=(0.86, 1.57, 1.03, 0.89, 0.68)),
    *_rows("table7", "delta_r+SWA", (80.32, 78.92, 78.07, 77.69, 94.81), (12.87, 3.65, 23.62, 16.72, 2.95),
           feature_loss=(0.86, 1.63, 0.87, 0.82, 0.73)),
    *_rows("table7", "delta_r+DO+SWA", (78.11, 79.03, 79.07, 76.79, 95.59), (9.83, 3.41, 7.16, 11.08, 2.86),
           feature_loss=(1.00, 1.68, 1.06, 1.02, 0.81)),
)


def row_label(row: dict) -> str:
    """The label of a results row (keys `method`, `dropout`, `swa`): the method, plus the switches that differ
    from its default. A missing switch counts as the method's default."""
    spec = METHODS[row["method"]]
    label = row["method"]
    for switch, default, suffix in (("dropout", spec.dropout, "DO"), ("swa", spec.swa, "SWA")):
        value = row.get(switch)
        on = default if value is None else bool(value)
        if on != default:
            label += f"+{suffix}" if on else f"-{suffix}"
    return label
