"""The Ray Tune function trainable: one trial of one transfer method, built from its config dict.

Reports every `eval_every` iterations (iteration, train_loss, feature_loss, val_acc, ...); every
`checkpoint_every` iterations and at the end of each stage the report carries a checkpoint it resumes
from exactly.
"""
import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.checkpoint import is_finished_checkpoint, load_checkpoint, save_checkpoint
from trainables.config import TrialConfig, resolve_config
from trainables.threads import use_threads
from trainables.trial import prepare_run


def trial_device() -> torch.device:
    """CUDA only when Ray gave this trial a GPU: with 0 GPUs Ray leaves CUDA_VISIBLE_DEVICES unset, so
    torch.cuda.is_available() alone would put CPU trials on a GPU they were not given."""
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def own_adversarial_set(adversarial_sets: dict, config: TrialConfig):
    """The entry crafted for this trial's pretrained model and selection split."""
    for spec, images in adversarial_sets.items():
        if spec.serves(config) and spec.split == config.selection_split:
            return images
    raise RuntimeError(f"no adversarial set was crafted for {config.dataset}/{config.arch}/{config.weights}")


def trial_cpus() -> int:
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))


def transfer_trainable(config: dict, adversarial_sets: dict | None = None,
                       min_checkpoint_interval_s: float = 0.0) -> None:
    """`adversarial_sets`: {AdversarialSetSpec: ObjectRef of its adversarial images}, crafted once by the driver
    on the selection split for every distinct pretrained model and dataset of the sweep; when given, the trial
    takes the one made for its own config and every report also carries `<split>_asr`.
    `min_checkpoint_interval_s`: a mid-run checkpoint comes at most this often (the one at the end always);
    short trials then write one checkpoint, not one every few seconds, each of which makes Tune snapshot the
    experiment."""
    started_at = time.time()
    use_threads(trial_cpus())
    device = trial_device()
    resolved = resolve_config(config)
    run = prepare_run(resolved, device)
    if adversarial_sets is not None:
        run.adversarial_images = ray.get(own_adversarial_set(adversarial_sets, resolved))
    where = {"device": device.type, "gpu_ids": ",".join(map(str, ray.get_gpu_ids())),
             "node_id": ray.get_runtime_context().get_node_id(), "trial_started_at": started_at}
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            if is_finished_checkpoint(Path(directory)):
                return  # restored after its last report: the trial is complete
            run.load_state_dict(load_checkpoint(Path(directory), device))
    last_checkpoint_at = time.time()
    for metrics in run.reports():
        metrics |= where | {"reported_at": time.time()}
        recent = time.time() - last_checkpoint_at < min_checkpoint_interval_s
        if not run.checkpoint_due or (recent and not run.finished):
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as directory:
            save_checkpoint(run, Path(directory))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        last_checkpoint_at = time.time()
