"""A trial checkpoint on disk: the resume state, the evaluation model alone (what the attack stage loads),
and a readable copy of the config.

A finished run's checkpoint holds the evaluation model and the config only: nothing is left to resume, so
the optimiser state, the live weights and the SWA average (together 3x the model) would be dead weight on
disk for every trial of a sweep.
"""
import json
from pathlib import Path

import torch

CHECKPOINT_FILE = "run.pt"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"


def save_checkpoint(run, directory: Path) -> None:
    """`run` is a trainables.train.TransferRun."""
    model = run.evaluation_state()
    if not run.finished:
        torch.save(run.state_dict(), directory / CHECKPOINT_FILE)
    torch.save(model, directory / MODEL_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(model["config"], indent=2, sort_keys=True))


def is_finished_checkpoint(directory: Path) -> bool:
    return not (Path(directory) / CHECKPOINT_FILE).is_file()


def load_checkpoint(directory: Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=True)


def load_model_state(directory: Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(Path(directory) / MODEL_FILE, map_location=device, weights_only=True)
