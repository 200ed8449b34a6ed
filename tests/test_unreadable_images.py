"""Image files that do not decode (truncated, empty, not an image) in a paper or image-folder layout: found before
any trial, one `error:` line naming the file, or with --skip-unreadable-images left out of every split and
counted in one `warning:` line; the verdict cached per file list."""
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from tests.layouts import MAKERS, FakeLayout, make_imagefolder, make_indoor
from trainables.adversarial_set import AdversarialSetSpec
from trainables.attack_presets import attack_config
from trainables.config import resolve_config
from trainables.data import readable
from trainables.data.readable import unreadable_images
from trainables.data.registry import build_transfer_data, check_images_decode, load_image_split
from trainables.errors import UserError
from trainables.trial import prepare_run
from tuner import train

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {**MAKERS, "imagefolder": make_imagefolder}


def photo(path: Path, fmt: str = "JPEG", **options) -> Path:
    """A noisy 64x48 image: enough entropy-coded data that a cut falls inside it."""
    pixels = np.random.default_rng(len(path.name)).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, fmt, **options)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def break_two_images(layout: FakeLayout) -> dict[Path, str]:
    """Two of the layout's images (the first and last it knows, a train and a test image): one a photo cut in
    half, one replaced by text; {path: the reason it is unreadable}."""
    known = sorted(layout.known)
    truncate(photo(known[0]))
    known[-1].write_text("<html>404 not found</html>\n")
    return {known[0]: "image file is truncated", known[-1]: "not an image file PIL can read"}


def first_listed(name: str, layout: FakeLayout, paths) -> Path:
    """Which of `paths` the dataset lists first (train before test): the one the messages name."""
    split = load_image_split(name, layout.root)
    order = [path for path, _ in split.train + split.test]
    return min(paths, key=order.index)


def test_the_check_finds_truncated_empty_and_non_image_files(tmp_path: Path) -> None:
    good = [photo(tmp_path / "good.jpg"), photo(tmp_path / "progressive.jpg", progressive=True),
            photo(tmp_path / "good.png", "PNG")]
    half = truncate(photo(tmp_path / "half.jpg"))
    no_end = truncate(photo(tmp_path / "no_end_marker.jpg"), keep=0.99)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("not an image\n")
    cut_png = truncate(photo(tmp_path / "cut.png", "PNG"))

    found = unreadable_images([half, *good, empty, no_end, text, cut_png], str(tmp_path / "cache"))
    assert [item.path for item in found] == [half, empty, no_end, text, cut_png]  # list order, good files pass
    reasons = {item.path.name: item.reason for item in found}
    assert reasons["half.jpg"].startswith("image file is truncated")
    assert reasons["no_end_marker.jpg"].startswith("image file is truncated")
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["text.jpg"] == "not an image file PIL can read"
    assert all("\n" not in reason and str(tmp_path) not in reason for reason in reasons.values())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing may turn truncation into grey pixels


def test_the_verdict_is_cached_per_file_list_sizes_and_mtimes(tmp_path: Path, monkeypatch) -> None:
    decoded = []
    check_one = readable._problem
    monkeypatch.setattr(readable, "_problem", lambda path: decoded.append(path) or check_one(path))
    paths = [photo(tmp_path / f"{number}.jpg") for number in range(4)]
    truncate(paths[1])
    cache = str(tmp_path / "cache")

    first = unreadable_images(paths, cache)
    assert len(decoded) == 4 and [item.path for item in first] == [paths[1]]
    assert unreadable_images(paths, cache) == first and len(decoded) == 4  # a hit: nothing decoded again
    unreadable_images(paths[:3], cache)
    assert len(decoded) == 7  # another list is another verdict
    photo(paths[1])  # repaired: a new size and modification time
    assert unreadable_images(paths, cache) == [] and len(decoded) == 11
    for entry in (tmp_path / "cache" / "image_checks").iterdir():
        entry.write_text("{damaged")
    assert unreadable_images(paths, cache) == [] and len(decoded) == 15  # a damaged entry is not trusted


def test_a_long_list_shows_its_progress_on_stderr(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(readable, "PROGRESS_FROM_IMAGES", 2)
    unreadable_images([photo(tmp_path / "a.jpg"), photo(tmp_path / "b.jpg")], str(tmp_path / "cache"), "the dogs")
    assert "checking that the dogs decode (once)" in capsys.readouterr().err


@pytest.mark.parametrize("name", LAYOUTS)
def test_an_unreadable_image_is_one_line_naming_it(name: str, tmp_path: Path) -> None:
    layout = LAYOUTS[name](tmp_path / name)
    broken = break_two_images(layout)
    first = first_listed(name, layout, broken)
    with pytest.raises(UserError) as raised:
        check_images_decode(name, layout.root, skip_unreadable=False)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{name}: cannot read image {first}: {broken[first]}")
    assert message.endswith(f"; 2 of its {layout.train_count + layout.test_count} images do not decode "
                            "(--skip-unreadable-images leaves them out)")


@pytest.mark.parametrize("name", LAYOUTS)
def test_skipped_images_are_left_out_of_every_split_before_it_is_made(name: str, tmp_path: Path) -> None:
    layout = LAYOUTS[name](tmp_path / name)
    broken = break_two_images(layout)
    first = first_listed(name, layout, broken)
    total = layout.train_count + layout.test_count
    warning = check_images_decode(name, layout.root, skip_unreadable=True)
    assert warning.startswith(f"{name}: skipped 2 unreadable images of {total} in {layout.root} "
                              f"(first: {first}: {broken[first]}")
    assert "\n" not in warning

    data = build_transfer_data(name, layout.root, val_fraction=0.25, skip_unreadable_images=True)
    assert data.skipped_images == 2
    splits = [data.train, data.val, data.test, data.train_plain]
    listed = [path for split in splits for path, _ in split.items]
    assert not broken.keys() & set(listed) and not broken.keys() & {path for path, _ in data.train.encoded().items}
    assert len(data.train) + len(data.val) + len(data.test) == total - 2
    for split in splits:  # every image left decodes, on the CPU path as on the GPU path's item list
        for index in range(len(split)):
            split[index]
    # Every trial of a sweep (any seed, any fraction) is selected on the same validation images.
    other = build_transfer_data(name, layout.root, 0.5, 7, val_fraction=0.25, skip_unreadable_images=True)
    assert other.val.items == data.val.items


def test_a_file_broken_after_the_check_still_stops_the_trial_naming_it(tmp_path: Path) -> None:
    layout = make_indoor(tmp_path)
    data = build_transfer_data("indoor", layout.root, val_fraction=0)
    path, _ = data.test.items[0]
    truncate(path)
    with pytest.raises(UserError, match=f"^cannot read image {re.escape(str(path))}: "):
        data.test[0]


def test_the_trial_and_its_adversarial_sets_skip_the_same_files(tmp_path: Path) -> None:
    layout = make_indoor(tmp_path)
    break_two_images(layout)
    config = resolve_config({"method": "retrain", "dataset": "indoor", "data_root": str(layout.root),
                             "arch": "resnet18_w8", "skip_unreadable_images": "true"})
    assert prepare_run(config).data.skipped_images == 2
    spec = AdversarialSetSpec.from_trial(config, attack_config("paper"), "test")
    assert spec.trial_config().skip_unreadable_images and spec.serves(config)


def test_train_takes_the_flag_into_the_trial_config_and_warns(tmp_path: Path, capsys) -> None:
    layout = make_indoor(tmp_path)
    break_two_images(layout)
    args = train.parse_args(["--method", "retrain", "--dataset", "indoor", "--data-root", str(layout.root),
                             "--skip-unreadable-images"])
    assert train.trial_config(args)["skip_unreadable_images"] is True
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: indoor: skipped 2 unreadable images of 13 in ")


@dataclass(frozen=True)
class Commands:
    runs: dict[str, subprocess.CompletedProcess]
    data_root: Path
    truncated: Path


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Commands:
    """tuner.train and tuner.sweep --dry-run as a user runs them, on an Indoor layout with one truncated JPEG;
    started together, as each pays seconds of torch import."""
    layout = make_indoor(tmp_path_factory.mktemp("indoor"))
    truncated = truncate(photo(sorted(layout.known)[0]))
    storage = tmp_path_factory.mktemp("runs") / "runs"
    data = ["--dataset", "indoor", "--data-root", str(layout.root), "--storage", str(storage)]
    dry_run = ["-m", "tuner.sweep", *data, "--dry-run", "--space", "lambda_feat_quick", "--method", "delta",
               "--arch", "resnet18_w32", "--iters", "10", "--set", "batch_size=1", "--set", "num_workers=0"]
    argvs = {"train": ["-m", "tuner.train", *data], "dry_run": dry_run,
             "dry_run_skipping": [*dry_run, "--skip-unreadable-images"]}
    processes = {key: subprocess.Popen([sys.executable, *argv], cwd=REPO, text=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE) for key, argv in argvs.items()}
    runs = {}
    for key, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        runs[key] = subprocess.CompletedProcess(argvs[key], process.returncode, stdout, stderr)
    assert not storage.exists()  # nothing started, nothing written
    return Commands(runs, layout.root, truncated)


@pytest.mark.slow  # three subprocesses importing torch and Ray
@pytest.mark.parametrize("command", ["train", "dry_run"])
def test_the_commands_stop_before_ray_with_one_line_naming_the_file(commands: Commands, command: str) -> None:
    run = commands.runs[command]
    assert run.returncode == 2 and run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: indoor: cannot read image {commands.truncated}: image file is truncated")


@pytest.mark.slow
def test_the_dry_run_with_the_flag_warns_once_and_plans(commands: Commands) -> None:
    run = commands.runs["dry_run_skipping"]
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"warning: indoor: skipped 1 unreadable image of 13 in {commands.data_root} "
                               f"(first: {commands.truncated}: image file is truncated")
    assert "dry run: nothing was started" in run.stdout and "delta: " in run.stdout
