"""Chance accuracy, 100 / number of classes, of the dataset a report group holds.

Robustness rows do not record the class count (only the checkpoint's model.pt does, and a report must not load
every checkpoint, possibly from s3). So the count comes from a `num_classes` column when the rows have one, else
from the dataset's spec (`trainables.data.specs`: the embedded tasks' class lists, the paper datasets' official
class counts).
"""
from dataclasses import dataclass

from trainables.data.specs import DATASETS
from tuner.report_statistics import is_missing


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
    if recorded or len(datasets) != 1:
        return None
    dataset = datasets.pop()
    spec = DATASETS.get(dataset)
    if spec is None or spec.num_classes is None:
        return None
    return ChanceLevel(spec.num_classes, f"the class count of dataset {dataset!r}")
