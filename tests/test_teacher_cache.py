"""The teacher's features computed once (trainables.teacher_cache): exactly the live teacher's, read back from
disk by later runs, never for unbounded augmentation or when turned off, rebuilt when damaged."""
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from torchvision.transforms import v2

from tests.conftest import TINY_SOURCE, tiny_config
from tests.layouts import make_dog
from trainables import teacher_cache
from trainables.checkpoint import load_checkpoint, save_checkpoint
from trainables.config import resolve_config
from trainables.data.registry import build_transfer_data
from trainables.data.tensors import TensorImageDataset
from trainables.regularizers import feature_distillation
from trainables.train import IterationBatches, TransferRun
from trainables.trial import prepare_run


def distilling_run(tmp_path: Path, method: str = "delta", **overrides) -> TransferRun:
    return prepare_run(resolve_config(tiny_config(method, cache_dir=str(tmp_path / "cache"), **overrides)))


PROBE = [2]  # opening an entry runs the teacher once on two images: the features' shapes and dtype


def teacher_calls(run: TransferRun) -> list:
    """Appends the batch size to the returned list on every forward pass of the run's teacher."""
    calls = []
    run.regularizer.teacher.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    return calls


def training_batches(run: TransferRun, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The run's first `count` augmented batches, drawn as its loop draws them."""
    loader = run._loader(run.data.train, IterationBatches(len(run.data.train), run.config.batch_size, 0, 0, count))
    return list(loader)


def entry_directory(tmp_path: Path) -> Path:
    entries = [path for path in (tmp_path / "cache" / "teacher_features").iterdir() if path.is_dir()]
    assert len(entries) == 1
    return entries[0]


def test_every_augmented_image_is_one_of_the_enumerated_variants():
    digits = build_transfer_data("digits", fraction=0.1, val_fraction=0.1).train  # RandomCrop(32, padding=2)
    shapes = TensorImageDataset(torch.rand(1, 3, 32, 32), torch.zeros(1, dtype=torch.long),  # novel_shapes' own
                                v2.Compose([v2.RandomCrop(32, padding=2), v2.RandomHorizontalFlip()]))
    torch.manual_seed(0)
    for dataset, count in ((digits, 25), (shapes, 50)):  # 5 x 5 offsets, x 2 with the flip
        variants = {tuple(image.flatten().tolist()) for image in dataset.variants(0)}
        drawn = {tuple(dataset[0][0].flatten().tolist()) for _ in range(30 * count)}
        assert len(variants) == count and drawn == variants


def test_cached_features_are_the_live_teachers_and_the_loss_is_the_same(tmp_path):
    run = distilling_run(tmp_path, "renofeation")  # the student has spatial dropout, the teacher none
    regularizer = run.regularizer
    regularizer.before_training()
    assert regularizer.teacher_cache.entry is not None
    for images, _ in training_batches(run, 3):
        cached, live = regularizer.teacher_stages(images), regularizer.live_teacher_stages(images)
        assert all(torch.equal(c, t) for c, t in zip(cached, live, strict=True))
        stages = run.student.train().forward_features(images)[1]
        assert torch.equal(regularizer(images, stages), feature_distillation(stages, live))
    served = 2 * 3 * run.config.batch_size  # teacher_stages, then the regulariser itself, on 3 batches
    assert regularizer.teacher_cache.served == served and regularizer.teacher_cache.computed == 0


def test_images_the_entry_lacks_go_to_the_live_teacher(tmp_path):
    run = distilling_run(tmp_path)
    run.regularizer.before_training()
    (images, _), = training_batches(run, 1)
    mixed = torch.cat([images, images.flip(-2)])  # an upside-down digit is no variant: computed live
    cached, live = run.regularizer.teacher_stages(mixed), run.regularizer.live_teacher_stages(mixed)
    assert all(torch.equal(c, t) for c, t in zip(cached, live, strict=True))
    assert (run.regularizer.teacher_cache.served, run.regularizer.teacher_cache.computed) == (len(images),) * 2


@pytest.mark.parametrize("method", ["delta", "renofeation"])
def test_a_run_with_the_cache_trains_bit_for_bit_like_one_without(tmp_path, method):
    # one after the other: a run seeds and draws from the global RNG
    with_cache = distilling_run(tmp_path, method)
    cached_reports = list(with_cache.reports())
    without = distilling_run(tmp_path, method, teacher_cache=False)
    assert cached_reports == list(without.reports())
    assert with_cache.regularizer.teacher_cache.computed == 0 and without.regularizer.teacher_cache is None
    trained, reference = with_cache.evaluation_model().state_dict(), without.evaluation_model().state_dict()
    assert all(torch.equal(trained[name], reference[name]) for name in reference)


def test_a_second_run_reads_the_entry_from_disk_without_running_the_teacher(tmp_path):
    first = distilling_run(tmp_path)
    first_calls = teacher_calls(first)
    list(first.reports())
    assert sum(first_calls) == sum(PROBE) + first.regularizer.teacher_cache.plan.rows  # nothing per step

    # another method, the same pretrained model and training images (`fraction` < 1 draws them by seed)
    second = distilling_run(tmp_path, "delta_r")
    second_calls = teacher_calls(second)
    list(second.reports())
    assert second_calls == PROBE
    assert second.regularizer.teacher_cache.served == second.total_iters * second.config.batch_size


def test_a_resumed_run_reloads_the_entry_and_checkpoints_hold_none_of_it(tmp_path):
    run = distilling_run(tmp_path, "renofeation")
    reports = run.reports()
    next(reports)
    (tmp_path / "checkpoint").mkdir()
    save_checkpoint(run, tmp_path / "checkpoint")
    rest = list(reports)
    state = load_checkpoint(tmp_path / "checkpoint")
    assert state["regularizer"] == {}
    resumed = distilling_run(tmp_path, "renofeation")
    resumed.load_state_dict(state)
    assert list(resumed.reports()) == rest
    assert resumed.regularizer.teacher_cache.computed == 0


def test_teacher_cache_false_runs_the_live_teacher(tmp_path):
    run = distilling_run(tmp_path, teacher_cache="false")
    calls = teacher_calls(run)
    list(run.reports())
    assert run.regularizer.teacher_cache is None and not (tmp_path / "cache" / "teacher_features").exists()
    assert calls == [run.config.batch_size] * run.total_iters


def test_a_paper_dataset_with_augmentation_runs_the_live_teacher(tmp_path):
    layout = make_dog(tmp_path / "dog")
    run = prepare_run(resolve_config({
        "method": "delta", "dataset": "dog", "data_root": str(layout.root), **TINY_SOURCE, "batch_size": 2,
        "iters": 2, "eval_every": 2, "num_workers": 0, "cache_dir": str(tmp_path / "cache")}))
    assert not run.data.finite_training_transform and run.regularizer.teacher_cache is None
    calls = teacher_calls(run)
    list(run.reports())
    assert calls == [2, 2] and not (tmp_path / "cache" / "teacher_features").exists()


def test_a_truncated_entry_is_not_read_but_computed_again(tmp_path):
    list(distilling_run(tmp_path).reports())
    stage = entry_directory(tmp_path) / "stage-0.npy"
    intact = stage.read_bytes()
    stage.write_bytes(intact[: len(intact) // 2])
    run = distilling_run(tmp_path)
    calls = teacher_calls(run)
    reports = list(run.reports())
    assert reports == list(distilling_run(tmp_path, teacher_cache=False).reports())
    assert sum(calls) == sum(PROBE) + run.regularizer.teacher_cache.plan.rows and stage.read_bytes() == intact


def test_while_another_process_builds_the_entry_a_trial_distils_live_and_looks_again(tmp_path):
    list(distilling_run(tmp_path).reports())
    directory = entry_directory(tmp_path)
    run = distilling_run(tmp_path)
    (images, _), = training_batches(run, 1)
    with FileLock(str(directory) + ".lock"):  # another builder holds it
        run.regularizer.before_training()
        assert run.regularizer.teacher_cache.entry is None
        run.regularizer.teacher_stages(images)
    for _ in range(teacher_cache.RETRY_STEPS - 2):
        run.regularizer.teacher_stages(images)
    assert run.regularizer.teacher_cache.entry is None
    run.regularizer.teacher_stages(images)  # the RETRY_STEPS-th step looks again and finds the entry
    assert run.regularizer.teacher_cache.entry is not None
    assert run.regularizer.teacher_cache.computed == (teacher_cache.RETRY_STEPS - 1) * len(images)
    assert run.regularizer.teacher_cache.served == len(images)


def test_an_entry_over_the_size_limit_is_not_built(tmp_path, monkeypatch):
    monkeypatch.setattr(teacher_cache, "MAX_ENTRY_BYTES", 1)
    run = distilling_run(tmp_path)
    list(run.reports())
    assert run.regularizer.teacher_cache.off and run.regularizer.teacher_cache.served == 0
    assert not list((tmp_path / "cache" / "teacher_features").glob("*/manifest.json"))


def test_a_cache_that_cannot_be_written_leaves_the_trial_on_the_live_teacher(tmp_path, monkeypatch):
    def full_disk(self, directory):
        (directory / "stage-0.npy").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(teacher_cache.TeacherFeatureCache, "_compute", full_disk)
    run = distilling_run(tmp_path)
    reports = list(run.reports())
    assert run.regularizer.teacher_cache.off and run.regularizer.teacher_cache.served == 0
    assert not [path for path in (tmp_path / "cache" / "teacher_features").iterdir() if path.is_dir()]
    assert reports == list(distilling_run(tmp_path, teacher_cache=False).reports())
