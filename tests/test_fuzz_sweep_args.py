"""Fuzzing (hypothesis) of the sweep's command line and of the user search-space loader: whatever the flags and
the space file hold, `python -m tuner.sweep ... --dry-run` builds its plan or prints one `error:` line and exits 2,
never a traceback.

The harness stops where the dry run starts measuring training steps: no Ray, no training. Inputs are mostly
plausible (so that many get as far as a plan) with random mistakes mixed in. CI runs the same examples every time
(derandomized); `RENOTUNE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_sweep_args.py --hypothesis-show-statistics`
explores that many fresh random ones per test.
"""
import contextlib
import io
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st

from search_spaces import DOMAIN_KINDS, SPACE_KEYS, SPACES
from trainables.config import CONFIG_KEYS, ITERATION_BUDGET, TrialConfig
from trainables.data.specs import DATASETS
from trainables.errors import UserError
from trainables.methods import METHODS
from tuner.cli import run_cli
from tuner.run_dir import SWEEP_RECORD, join, location
from tuner.sweep import command_parser, main, parse_args, settings_from
from tuner.sweep_plan import Plan, plans_for
from tuner.sweep_run import resumed_settings

EMBEDDED_DATASETS = tuple(name for name, spec in DATASETS.items() if not spec.needs_data_root)

EXPLORE_EXAMPLES = int(os.environ.get("RENOTUNE_FUZZ_EXAMPLES", "0"))


def fuzzing(ci_examples: int) -> settings:
    """CI: `ci_examples` fixed examples, so a run never flakes; exploring: fresh random ones. No example database:
    a failure is reproduced from the printed example, and the working tree stays clean."""
    return settings(max_examples=EXPLORE_EXAMPLES or ci_examples, derandomize=not EXPLORE_EXAMPLES, deadline=None,
                    database=None)


def dry_run_plans(argv: list[str]) -> list[Plan]:
    """What `python -m tuner.sweep ARGV` does up to its plans (tuner.sweep.main, then tuner.sweep_run's
    run_sweep_settings before a dry run measures training steps); [] for --list-spaces and --show-space, which
    print."""
    args = parse_args(argv)
    if args.list_spaces or args.show_space:
        main(argv)  # prints and returns before any work
        return []
    settings = settings_from(args)
    storage = location(settings.storage)
    if settings.resume:
        settings = resumed_settings(settings, join(storage, settings.name))
    return plans_for(settings)


def one_line_user_errors(argv: list[str]) -> None:
    """dry_run_plans, whose user errors must be one line before run_cli prints them."""
    try:
        dry_run_plans(argv)
    except UserError as error:
        assert len(str(error).splitlines()) == 1, repr(str(error))
        raise


def dry_run_error(argv: list[str]) -> str | None:
    """None when the dry run's plans were built; otherwise the one `error:` line the command prints (exit 2).
    Any other exception propagates: it would be a traceback for the user."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            run_cli(one_line_user_errors, [*argv, "--dry-run"])
        except SystemExit as exit:
            printed = stderr.getvalue()
            assert exit.code == 2, (exit.code, printed)
            assert printed.startswith("error: ") and printed.endswith("\n"), printed
            assert len(printed.splitlines()) == 1 and printed.strip() != "error:", repr(printed)
            return printed
    return None


def count(error: str | None) -> None:
    """--hypothesis-show-statistics tells how many examples got as far as a plan."""
    event("one error line" if error else "plans built")


# Beside the fuzzed files: a valid space file, and an interrupted sweep that --resume --name old continues.
VALID_SPACE = {"methods": ["finetune", "delta"],
               "parameters": {"lr": {"grid": [0.01, 0.02], "loguniform": [1e-3, 0.1]}},
               "fixed": {"dataset": "digits"}}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A run storage, a data root and space files shared by every example (each example rewrites its own)."""
    scratch = tmp_path_factory.mktemp("fuzz")
    (scratch / "valid.yaml").write_text(yaml.safe_dump(VALID_SPACE))
    (scratch / "valid.json").write_text(json.dumps(VALID_SPACE))
    record = {"settings": vars(parse_args(["--space", "lambda_feat_quick", "--dataset", "digits"]))}
    (scratch / "runs" / "old").mkdir(parents=True)
    (scratch / "runs" / "old" / SWEEP_RECORD).write_text(json.dumps(record))
    return scratch


# --- values ----------------------------------------------------------------------------------------------------------

def plausibly(plausible: st.SearchStrategy, anything: st.SearchStrategy) -> st.SearchStrategy:
    """Three draws in four from `plausible`: most inputs get past the first check, one mistake at a time."""
    return st.one_of(plausible, plausible, plausible, anything)


# What a command line can carry: any text but NUL; undecodable bytes arrive as lone surrogates (surrogateescape).
ARGV_CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00") | st.characters(
    min_codepoint=0xDC80, max_codepoint=0xDCFF)
LONG_NAME = "x" * 300  # past the file system's 255 bytes a name
# "-h..." would print --help and exit 0: like --dry-run, a flag this harness does not fuzz.
ARGV_TEXT = st.text(ARGV_CHARACTERS, max_size=12).filter(lambda text: not text.startswith("-h")) | st.sampled_from(
    ["", " ", "-", "--", "-1", "None", "null", "a=b", "\n", "é", "\u202e", "\u2028", LONG_NAME])
NUMBER_TEXT = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.floats().map(repr),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e999", "0", "-0", "0.0", "1_000", "0x10", " 7 ", "٣", "1e-320",
                     "+5", "2.5", "1", "-1", "3", "4294967296", "9" * 5000]))
ARCHS = ("resnet18_w8", "resnet18_w16", "resnet18", "mobilenet_v2", "resnet18_w0", "resnet18_w" + "9" * 30,
         "resnet18_w-1", "vit_b_16", "googlenet", "resnet18_w1025")
FLAGS = {action.dest: action for action in command_parser()._actions
         if action.option_strings and action.dest not in ("help", "dry_run")}
SPACE_FILE_NAMES = ("valid.yaml", "valid.json", "missing.yaml", "valid.txt", "valid.yaml/inside.yaml",
                    LONG_NAME + ".yaml")


def config_values(key: str) -> st.SearchStrategy:
    """Values a trial config key plausibly takes (a combination may still be refused), from its default's type."""
    named = {"method": st.sampled_from(tuple(METHODS)), "dataset": st.sampled_from(EMBEDDED_DATASETS),
             "arch": st.sampled_from(ARCHS[:2]), "taps": st.sampled_from([None, "layer1", "layer2,layer4"]),
             "fraction": st.floats(0.05, 1.0), "val_fraction": st.sampled_from([0.0, 0.1, 0.2]),
             "dropout_p": st.floats(0.0, 0.9), "seed": st.integers(0, 3)}
    if key in named:
        return named[key]
    default = getattr(TrialConfig, key)
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(1, 1000)
    if isinstance(default, float):
        return st.floats(1e-4, 1.0)
    return st.none()  # paths: data_root, weights, cache_dir


def config_assignment() -> st.SearchStrategy[str]:
    """A --set KEY=VALUE."""
    plausible = st.sampled_from(CONFIG_KEYS).flatmap(
        lambda key: config_values(key).map(lambda value: f"{key}={'' if value is None else value}"))
    keys = st.sampled_from(CONFIG_KEYS + (ITERATION_BUDGET,)) | ARGV_TEXT
    values = NUMBER_TEXT | ARGV_TEXT | st.sampled_from(tuple(METHODS) + tuple(DATASETS) + ARCHS) | st.sampled_from(
        ["true", "false", "yes", "layer1,layer1", "features.3"])
    anything = st.builds(lambda key, separator, value: f"{key}{separator}{value}", keys,
                         st.sampled_from(["=", "=", ""]), values)
    return plausibly(plausible, anything)


def any_flag_value(dest: str, scratch: Path) -> st.SearchStrategy[str]:
    """Anything the flag may be given: its own kind of value, a number, any text."""
    action = FLAGS[dest]
    if action.choices:
        return st.sampled_from(action.choices) | ARGV_TEXT
    if dest == "gpus_per_trial":  # a number or auto
        return NUMBER_TEXT | ARGV_TEXT | st.sampled_from(["auto", "AUTO", "auto "])
    if action.type in (int, float):
        return NUMBER_TEXT | ARGV_TEXT
    if dest == "set":
        return config_assignment()
    if dest in ("space", "show_space"):
        return st.sampled_from(tuple(SPACES) + tuple(str(scratch / name) for name in SPACE_FILE_NAMES)) | ARGV_TEXT
    if dest == "storage":  # local: a URI such as s3://bucket would reach out to the network
        return st.sampled_from([str(scratch / "runs"), "relative/runs", "", "nope://bucket", f"file://{scratch}/runs",
                                LONG_NAME]) | ARGV_TEXT.filter(lambda text: "://" not in text)
    if dest == "arch":
        return st.sampled_from(ARCHS) | ARGV_TEXT
    if dest == "data_root":
        return st.sampled_from([str(scratch), str(scratch / "missing"), str(scratch / "valid.yaml"),
                                LONG_NAME]) | ARGV_TEXT
    return ARGV_TEXT


def plausible_flag_value(dest: str, scratch: Path) -> st.SearchStrategy[str]:
    action = FLAGS[dest]
    if action.choices:
        return st.sampled_from(action.choices)
    if dest == "gpus_per_trial":
        return st.sampled_from(["1", "0.5", "0.25", "auto"])
    if action.type in (int, float):
        return st.sampled_from(["1", "2", "3"] + (["0.5", "0.25"] if action.type is float else []))
    if dest in ("space", "show_space"):
        return st.sampled_from(tuple(SPACES) + (str(scratch / "valid.yaml"), str(scratch / "valid.json")))
    if dest == "storage":
        return st.just(str(scratch / "runs"))
    if dest == "name":
        return st.just("old") | ARGV_TEXT
    return any_flag_value(dest, scratch)


def flag(scratch: Path) -> st.SearchStrategy[list[str]]:
    """One flag as a command line spells it (with its value, =value, or missing its value), or an unknown word."""
    def spelled(dest: str) -> st.SearchStrategy[list[str]]:
        name = FLAGS[dest].option_strings[0]
        if FLAGS[dest].nargs == 0:
            return st.just([name])
        value = plausibly(plausible_flag_value(dest, scratch), any_flag_value(dest, scratch))
        return plausibly(value.map(lambda text: [name, text]),
                         value.map(lambda text: [f"{name}={text}"]) | st.just([name]))
    unknown = ARGV_TEXT.map(lambda text: [f"--{text}"]) | ARGV_TEXT.map(lambda text: [text])
    return plausibly(st.sampled_from(sorted(FLAGS)).flatmap(spelled), unknown)


def command_lines(scratch: Path) -> st.SearchStrategy[list[str]]:
    """Flags in any order, repeated or not; the run storage is the scratch folder unless a flag says otherwise."""
    return st.lists(flag(scratch), max_size=6).map(
        lambda flags: ["--storage", str(scratch / "runs"), *(word for words in flags for word in words)])


# --- the command line ------------------------------------------------------------------------------------------------

@pytest.mark.slow  # hundreds of examples, ~10 s
@fuzzing(ci_examples=500)
@given(data=st.data())
def test_any_command_line_plans_or_fails_in_one_line(scratch, data):
    count(dry_run_error(data.draw(command_lines(scratch), label="argv")))


# A plan that is quick to build, so one flag given a random value decides the outcome.
QUICK = ["--space", "lambda_feat_quick", "--dataset", "digits"]


@pytest.mark.slow  # hundreds of examples, ~10 s
@fuzzing(ci_examples=400)
@given(data=st.data())
def test_a_bad_flag_value_is_named_in_the_error(scratch, data):
    dest = data.draw(st.sampled_from(sorted(dest for dest, action in FLAGS.items() if action.nargs != 0)),
                     label="flag")
    name, value = FLAGS[dest].option_strings[0], data.draw(any_flag_value(dest, scratch), label="value")
    error = dry_run_error(["--storage", str(scratch / "runs"), *QUICK, f"{name}={value}"])
    count(error)
    if error is not None:
        # The flag or its value, or the flag this one needs beside it (--recipe: --data-root).
        named = {name, name[2:], dest, value.strip(), repr(value)[1:-1], "--"}
        if dest == "set":
            key, _, assigned = value.partition("=")
            named |= {key.strip(), assigned.strip()}
        assert any(word and word in error for word in named), (name, value, error)


# --- user search-space files -----------------------------------------------------------------------------------------

# Keys the loader knows (a space's, a domain's, a config's) mixed with any other hashable YAML key.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
REAL_KEYS = st.sampled_from(SPACE_KEYS + DOMAIN_KINDS + CONFIG_KEYS + (ITERATION_BUDGET,))
KEYS = REAL_KEYS | TEXT | st.integers(-5, 5) | st.booleans() | st.none() | st.floats(allow_nan=False)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), TEXT,
                    st.sampled_from(tuple(METHODS) + tuple(DATASETS) + ARCHS),
                    st.sampled_from([0, 1, 2, 0.5, 1e-3, 10, -1, 100, 30_000, "1e-3", "true", 10**400]))
ANYTHING = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                        max_leaves=10)


def low_high(numbers: st.SearchStrategy) -> st.SearchStrategy[list]:
    """[low, high] with low < high."""
    return st.tuples(numbers, numbers).map(lambda pair: [min(pair), max(pair) + (pair[0] == pair[1])])


def domains(key: str) -> st.SearchStrategy[dict]:
    """A well-formed domain for config key `key`: a grid and/or one sampled domain of its kind of values."""
    values = config_values(key)
    sampled = {"choice": st.lists(values, min_size=1, max_size=3)}
    default = getattr(TrialConfig, key, None)
    if isinstance(default, float):
        sampled |= {"uniform": low_high(values), "loguniform": low_high(values)}
    elif isinstance(default, int) and not isinstance(default, bool):
        sampled["randint"] = low_high(values)
    grid = st.lists(values, min_size=1, max_size=3)
    one_sampled = st.sampled_from(sorted(sampled)).flatmap(lambda kind: sampled[kind].map(lambda v: {kind: v}))
    return plausibly(st.builds(lambda grid, other: {"grid": grid, **other}, grid, st.just({}) | one_sampled),
                     one_sampled)


PLAUSIBLE_SPACES = st.fixed_dictionaries(
    {"parameters": st.lists(st.sampled_from(CONFIG_KEYS), min_size=1, max_size=3, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({key: domains(key) for key in keys})),
     "methods": st.lists(st.sampled_from(tuple(METHODS)), min_size=1, max_size=3, unique=True)},
    optional={"name": TEXT, "description": TEXT, "source": TEXT,
              "fixed": st.lists(st.sampled_from(CONFIG_KEYS + (ITERATION_BUDGET,)), max_size=3, unique=True).flatmap(
                  lambda keys: st.fixed_dictionaries({key: config_values(key if key != ITERATION_BUDGET else "iters")
                                                      for key in keys}))})


@st.composite
def mutated(draw, document):
    """`document` with one node somewhere in it replaced by anything, or a mapping's key dropped or added."""
    if not isinstance(document, (dict, list)) or not document or draw(st.integers(0, 3)) == 0:
        return draw(ANYTHING)
    if isinstance(document, list):
        index = draw(st.integers(0, len(document) - 1))
        return [*document[:index], draw(mutated(document[index])), *document[index + 1:]]
    key = draw(st.sampled_from(list(document)))
    change = draw(st.sampled_from(["descend", "drop", "add"]))
    if change == "drop":
        return {k: v for k, v in document.items() if k != key}
    if change == "add":
        return {**document, draw(KEYS): draw(ANYTHING)}
    return {**document, key: draw(mutated(document[key]))}


SPACE_DOCUMENTS = plausibly(PLAUSIBLE_SPACES, PLAUSIBLE_SPACES.flatmap(mutated) | ANYTHING)
# A few lines whose aliases expand to a million values.
BILLION_LAUGHS = "methods: [finetune]\nparameters: {lr: {grid: [0.1]}}\nfixed:\n" + "".join(
    f"  x{level}: &x{level} [{', '.join([f'*x{level - 1}' if level else '1'] * 10)}]\n" for level in range(6))
# Syntax a serializer never writes: broken, YAML-only tags and types, self-reference, nothing at all.
RAW_TEXTS = st.sampled_from([
    "", "\n", "---\n...\n", "parameters: {lr: {grid: [0.1]}\n", "{", "[1, 2", "parameters:\n\tlr: 1\n",
    "methods: [finetune]\nparameters: {lr: {grid: [2020-01-01]}}\n",
    "methods: [finetune]\nparameters: {lr: {grid: [0.1]}}\nfixed: {seed: !!binary aGVsbG8=}\n",
    "methods: !!set {finetune, delta}\nparameters: {lr: {grid: [0.1]}}\n",
    "methods: [finetune]\nparameters: !!omap [{lr: {grid: [0.1]}}]\n",
    "methods: [finetune]\nparameters: {lr: {grid: [0.1]}}\nfixed: !!python/object/apply:os.getcwd []\n",
    "methods: [finetune]\nparameters: {lr: &a {grid: [0.1]}, momentum: *a}\n",
    "methods: [finetune]\nparameters: {[lr]: {grid: [0.1]}}\n",
    "methods: [finetune]\nparameters: {lr: {grid: [.nan, .inf]}}\n",
    '{"methods": ["finetune"], "parameters": {"lr": {"grid": [NaN, Infinity]}}}',
    '{"methods": ["finetune"], "parameters": {"lr": {"grid": [1e999]}}}',
    "\ufeffmethods: [finetune]\nparameters: {lr: {grid: [0.1]}}\n",
    "methods: [finetune]\nparameters: {lr: {grid: &a [1, *a]}}\n",
    BILLION_LAUGHS, "[" * 5000,
]) | TEXT
FILE_CONTENTS = plausibly(
    st.tuples(SPACE_DOCUMENTS, st.sampled_from(["json", "yaml"])).map(
        lambda pair: json.dumps(pair[0]) if pair[1] == "json" else yaml.safe_dump(pair[0], allow_unicode=True)),
    RAW_TEXTS | st.binary(max_size=40))
SPACE_FLAGS = st.lists(st.sampled_from([
    ["--search", "random"], ["--search", "optuna-mo"], ["--scheduler", "mo-asha"], ["--method", "finetune"],
    ["--method", "delta"], ["--dataset", "digits"], ["--dataset", "dog"], ["--iters", "10"],
    ["--set", "batch_size=8"]]), max_size=3).map(lambda flags: [word for words in flags for word in words])


def write_space(scratch: Path, file_name: str, contents: str | bytes) -> Path:
    """The space file a user hands --space; "folder.yaml" is a directory and "missing.yaml" is never written."""
    path = scratch / "spaces" / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_name == "folder.yaml":
        path.mkdir(exist_ok=True)
    elif file_name != "missing.yaml":
        if isinstance(contents, bytes):
            path.write_bytes(contents)
        else:
            path.write_text(contents, encoding="utf-8")
    return path


@pytest.mark.slow  # hundreds of examples, ~10 s
@fuzzing(ci_examples=600)
@given(file_name=st.sampled_from(("mine.yaml",) * 4 + ("mine.json",) * 4 + ("mine.yml", "mine.YAML", "mine.txt",
                                                                           "missing.yaml", "folder.yaml")),
       contents=FILE_CONTENTS, flags=SPACE_FLAGS, show=plausibly(st.just(False), st.just(True)))
def test_any_space_file_plans_or_fails_in_one_line(scratch, file_name, contents, flags, show):
    path = write_space(scratch, file_name, contents)
    count(dry_run_error(["--storage", str(scratch / "runs"), "--show-space" if show else "--space", str(path),
                         *flags]))


# --- inputs that once broke the sweep: a traceback, an error over several lines, or minutes of planning ----------

@pytest.mark.parametrize("flags, named", [
    (["--name", "x", "a\nb"], "unrecognized arguments: a\\nb"),  # argparse quotes argv raw
    (["--space", "a\u2028b.yaml"], "a\\u2028b.yaml"),
    (["--cpus-per-trial=--"], "--cpus-per-trial: expected one argument"),  # Python 3.11 made it []
    (["--space=--"], "--space: expected one argument"),
    (["--set=--"], "--set: expected one argument"),
    (["--arch", "resnet18_w" + "9" * 30], "must be 1 to 1024"),  # overflowed torch's integers
    (["--arch", "resnet18_w0"], "must be 1 to 1024"),  # planned, to crash in training
    (["--set", "iters=inf"], "config iters='inf' is not a valid int"),  # OverflowError
    (["--set", "iteration_budget=inf"], "config iteration_budget='inf' (--iters) is not a valid int"),
    (["--set", "iteration_budget=0.0"], "config iteration_budget=0 (--iters) must be > 0"),  # named neither
    (["--set", "lr=nan"], "config lr='nan' is not a valid float"),  # planned: NaN passes every range check
    (["--set", "dropout_p=inf"], "config dropout_p='inf' is not a valid float"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial nan must be a finite number"),  # the dry run's int(nan)
    (["--gpus-per-trial", "inf"], "--gpus-per-trial inf must be a finite number"),
    (["--num-cpus", "0"], "--num-cpus 0 must be > 0"),  # a local Ray without CPUs runs no trial
    (["--num-gpus", "-1"], "--num-gpus -1.0 must be >= 0"),
    (["--budget", "nan"], "--budget nan must be a finite number"),  # the final stage, hours later
    (["--step", "0"], "--step 0.0 must be > 0"),
    (["--iters", "0"], "--iters 0 must be > 0"),
    (["--seed", "-1"], "--seed -1 must be in [0, 2**32)"),  # Optuna's sampler, after the warm-up
    (["--seed", "4294967296"], "--seed 4294967296 must be in [0, 2**32)"),
    (["--space", "x" * 300 + ".yaml"], "File name too long"),  # OSError from Path.is_file
    (["--storage", "~no_such_user_here/runs"], "is not a usable path"),  # RuntimeError from expanduser
    (["--resume", "--name", "x" * 300], "File name too long"),  # OSError from pyarrow's stat
    (["--search", "random", "--num-samples", str(10**12)], "a sweep runs at most 100000"),  # the dry run's list
])
def test_command_lines_that_once_broke_are_one_error_line(scratch, flags, named):
    error = dry_run_error(["--storage", str(scratch / "runs"), *QUICK, *flags])
    assert error is not None and named in error, error


def test_a_storage_in_a_symlink_loop_is_one_error_line(scratch):
    (scratch / "loop_a").symlink_to(scratch / "loop_b")
    (scratch / "loop_b").symlink_to(scratch / "loop_a")
    error = dry_run_error(["--storage", str(scratch / "loop_a" / "runs"), *QUICK])
    assert error is not None and "is not a usable path" in error, error


HUGE_GRID = {"methods": ["finetune"], "parameters": {key: {"grid": list(range(1, 11))} for key in (
    "iters", "batch_size", "seed", "swa_every", "eval_every", "adv_steps")}}


@pytest.mark.parametrize("contents, flags, named", [
    ("grid: null\n0: null\n", [], "unknown key"),  # sorted() of str and int keys
    ("methods: [finetune]\nparameters: {lr: {grid: [0.1], 0: [1], x: [1]}}\n", [], "unknown domain"),
    ("methods: [finetune]\nparameters: {lr: {grid: [0.1]}}\nfixed: {0: 1, x: 1}\n", [], "fixed key"),
    ("methods: !!set {finetune, delta}\nparameters: {lr: {grid: [0.1]}}\n", [], "'methods' lists"),
    ("methods: !!set {finetune, delta}\nparameters: {lr: {grid: [0.1]}}\n", ["--method", "delta"],
     "'methods' lists"),
    ("methods: [finetune]\nparameters: {method: {grid: [[delta]]}}\n", [], "unknown method \"['delta']\""),
    ("methods: [finetune]\nparameters: {lr: {grid: [0.1]}}\nfixed: [1, 2]\n", [], "'fixed' must map"),
    ("methods: [finetune]\nparameters: {lr: {grid: [0.1]}}\nfixed: ab\n", [], "'fixed' must map"),
    ("methods: [finetune]\nparameters: {lr: {uniform: [a, 1]}}\n", [], "uniform needs [low, high]"),
    ("methods: [finetune]\nparameters: {lr: {loguniform: [a, b]}}\n", [], "loguniform needs [low, high]"),
    ("methods: [finetune]\nparameters: {iters: {randint: [a, b]}}\n", ["--search", "random"],
     "randint needs [low, high]"),
    ("methods: [finetune]\nparameters: {iters: {randint: [0.5, 3]}}\n", ["--search", "random"],
     "randint needs [low, high]"),
    ("methods: [finetune]\nparameters: {lr: {uniform: [0, .inf]}}\n", ["--search", "random"],
     "uniform needs [low, high]"),
    ("methods: [finetune]\nparameters: {batch_size: {grid: [null]}}\n", [], "config batch_size=None"),
    ("methods: [finetune]\nparameters: {seed: {grid: [1" + "0" * 30 + "]}}\n", [], "must be in [0, 2**32)"),
    ("methods: [finetune]\nparameters: {lr: {grid: [1" + "0" * 400 + "]}}\n", [], "is not a valid float"),
    ("methods: [finetune]\nparameters: {lr: {grid: &a [1, *a]}}\n", [], "contain itself"),
    (BILLION_LAUGHS, [], "values with its aliases expanded"),
    ("[" * 5000, [], "is not valid YAML"),  # RecursionError
    (json.dumps(HUGE_GRID), [], "1,000,000 combinations"),  # minutes and gigabytes of planning
])
def test_space_files_that_once_broke_are_one_error_line(scratch, contents, flags, named):
    error = dry_run_error(["--storage", str(scratch / "runs"), "--space", str(write_space(scratch, "mine.yaml",
                                                                                          contents)), *flags])
    assert error is not None and named in error, error


def test_show_space_prints_a_yaml_files_dates_and_binaries_as_text(scratch, capsys):
    path = write_space(scratch, "mine.yaml", "methods: [finetune]\nparameters: {lr: {grid: [2020-01-01]}}\n"
                                             "fixed: {weights: !!binary aGVsbG8=}\n")
    main(["--show-space", str(path)])  # json.dumps raised TypeError
    shown = json.loads(capsys.readouterr().out)
    assert shown["parameters"]["lr"]["grid"] == ["2020-01-01"] and shown["fixed"]["weights"] == "b'hello'"
