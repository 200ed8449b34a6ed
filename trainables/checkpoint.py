"""A trial checkpoint on disk: one torch file plus a readable copy of the config."""
import json
from pathlib import Path

import torch

CHECKPOINT_FILE = "run.pt"
CONFIG_FILE = "config.json"


def save_checkpoint(state: dict, directory: Path) -> None:
    torch.save(state, directory / CHECKPOINT_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(state["config"], indent=2, sort_keys=True))


def load_checkpoint(directory: Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=True)
