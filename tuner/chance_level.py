"""Chance accuracy, 100 / number of classes, of the dataset a report group holds.

Robustness rows do not record the class count (only the checkpoint's model.pt does, and a report must not load
every checkpoint, possibly from s3). So the count comes from a `num_classes` column when the rows have one, else
from the dataset's name: the embedded tasks' own class lists, and the paper datasets' official class counts
(what their archives' class lists hold).
"""
from dataclasses import dataclass

from trainables.data.registry import NOVEL_CLASSES
from trainables.data.synthetic import NUM_CLASSES as SOURCE_CLASSES
from tuner.report_statistics import is_missing

DATASET_CLASSES = {
    "digits": 10, "novel_shapes": len(NOVEL_CLASSES), "synthetic": SOURCE_CLASSES,
    "dog": 120,  # Stanford Dogs
    "bird": 200,  # CUB-200-2011
    "action": 40,  # Stanford 40 Actions
    "indoor": 67,  # MIT Indoor 67
    "flower": 102,  # Oxford Flowers 102
}


@dataclass(frozen=True)
class ChanceLevel:
    num_classes: int
    source: str  # where the class count came from

    @property
    def accuracy(self) -> float:
        """Percent correct of a classifier that guesses uniformly."""
        return 100.0 / self.num_classes


def chance_level(rows: list[dict]) -> ChanceLevel | None:
    """The chance level of a group's rows (one dataset); None when their class count is unknown or disagrees."""
    recorded = {int(row["num_classes"]) for row in rows if not is_missing(row.get("num_classes"))}
    if len(recorded) == 1:
        return ChanceLevel(recorded.pop(), "the rows' num_classes column")
    datasets = {str(row.get("dataset")) for row in rows}
    if recorded or len(datasets) != 1 or datasets & DATASET_CLASSES.keys() != datasets:
        return None
    dataset = datasets.pop()
    return ChanceLevel(DATASET_CLASSES[dataset], f"the class count of dataset {dataset!r}")
