"""A trial checkpoint on disk: the resume state, the evaluation model alone (what the attack stage loads),
and a readable copy of the config."""
import json
from pathlib import Path

import torch

CHECKPOINT_FILE = "run.pt"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"


def save_checkpoint(run, directory: Path) -> None:
    """`run` is a trainables.train.TransferRun."""
    state = run.state_dict()
    torch.save(state, directory / CHECKPOINT_FILE)
    torch.save(run.evaluation_state(), directory / MODEL_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(state["config"], indent=2, sort_keys=True))


def load_checkpoint(directory: Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=True)


def load_model_state(directory: Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(Path(directory) / MODEL_FILE, map_location=device, weights_only=True)
