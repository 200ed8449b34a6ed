"""The sweep's work, after its command line (tuner.sweep) or its Python API (tuner.api) handed over the
settings: sources warmed up, selection-split adversarial sets crafted, the trials under Ray Tune (Ray's own
output in RUN_DIR/ray.log, a live status on the console), then the final stage and the report.
"""
import importlib.util
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune import ExperimentAnalysis, ResultGrid
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from trainables.adversarial_set import AdversarialSetSpec, adversarial_set
from trainables.attack_presets import attack_config
from trainables.config import selection_metrics
from trainables.errors import UserError
from trainables.methods import get_method
from trainables.threads import use_threads
from trainables.trainable import transfer_trainable
from trainables.trial import pretrained_for
from tuner.attack_stage import default_attack_preset, run_attack_stage, stopped_early
from tuner.cli import GPUS_AUTO, SCHEDULERS
from tuner.cluster_address import check_reachable
from tuner.dry_run import plan_summary, resolve_auto_gpus
from tuner.mo_asha import MultiObjectiveASHA
from tuner.progress import LiveStatus
from tuner.ray_output import ray_log_file, ray_output_to
from tuner.recipes import RECIPE_ATTACK_PRESET
from tuner.refit import chosen_configurations, refit_tuner
from tuner.report_build import build_report
from tuner.report_render import front_digest
from tuner.run_dir import (
    REFIT_EXPERIMENT,
    ROBUSTNESS_TABLE,
    SWEEP_RECORD,
    TRIALS_TABLE,
    StorageError,
    human_size,
    join,
    location,
    package_versions,
    read_json,
    read_rows,
    remove,
    run_name,
    size_in_bytes,
    storage_failure,
    storage_problem,
    write_json,
    write_rows,
)
from tuner.run_lock import LOCK_FILES, sweep_locks
from tuner.settings import SweepSettings
from tuner.sweep_plan import Plan, plans_for, selects_on_asr
from tuner.trials_table import trial_rows, unfinished

# Without early stopping, a preempted trial loses at most this much beyond its `checkpoint_every`; checkpointing
# more often costs disk writes and, with num_to_keep, a forced experiment snapshot each.
MIN_CHECKPOINT_INTERVAL_S = 60.0


class SweepInterrupted(Exception):
    """Trials were left unfinished (Ctrl-C, a lost cluster); the message is the command that continues."""


@dataclass
class SweepOutcome:
    """What one sweep produced: its run directories (one per recipe part), Tune's ResultGrid for each, and the
    report's location and summary record (None with --no-attack or --dry-run)."""

    run_dirs: list[str] = field(default_factory=list)
    result_grids: list[ResultGrid] = field(default_factory=list)
    report: str | None = None
    summary: dict | None = None


class PruningOptunaSearch(OptunaSearch):
    """Trials a scheduler stopped early reach Optuna as PRUNED, not COMPLETE with a partial score
    (Ray's OptunaSearch reports whatever the last result was)."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, None if result and stopped_early(result) else result, error)


def searcher(search: str, seed: int, split: str):
    accuracy, asr = selection_metrics(split)
    if search == "optuna":
        return PruningOptunaSearch(metric=accuracy, mode="max", sampler=optuna.samplers.TPESampler(seed=seed))
    if search == "optuna-mo":
        # Searcher and scheduler get their own metrics: TuneConfig(metric=...) would make this single-objective.
        return PruningOptunaSearch(metric=[accuracy, asr], mode=["max", "min"],
                                   sampler=optuna.samplers.TPESampler(seed=seed))
    return None  # Tune's basic variant generator: grid_search and random sampling


def scheduler(name: str, longest: int, eval_every: int, split: str):
    if name not in SCHEDULERS:
        raise UserError(f"unknown --scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    if name == "fifo":
        return FIFOScheduler()
    grace = max(eval_every, longest // 9)
    accuracy, asr = selection_metrics(split)
    if name == "mo-asha":
        return MultiObjectiveASHA(time_attr="iteration", metrics=[accuracy, asr], modes=["max", "min"],
                                  max_t=longest, grace_period=grace, reduction_factor=3)
    return ASHAScheduler(time_attr="iteration", metric=accuracy, mode="max", max_t=longest, grace_period=grace,
                         reduction_factor=3)


def sweep_record(settings: SweepSettings, space_name: str, run_dir: str) -> dict:
    return {"space": space_name, "run_dir": run_dir, "argv": sys.argv[1:], "settings": settings.to_record(),
            "versions": package_versions(), "written_at": time.time()}


def resumed_settings(settings: SweepSettings, run_dir: str) -> SweepSettings:
    """The interrupted sweep's own settings; only where to find it, which cluster to use and how much to print
    come from now."""
    record = read_json(join(run_dir, SWEEP_RECORD))
    if record is None:
        raise UserError(f"--resume: no sweep to continue at {run_dir} (none was started there, or it was stopped "
                        f"before it recorded its settings): run the same command again without --resume")
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise UserError(f"--resume: {join(run_dir, SWEEP_RECORD)} holds no sweep settings")
    # Never the recorded --overwrite: continuing a sweep must not delete it.
    return SweepSettings.from_record(record["settings"], resume=True, overwrite=False, name=settings.name,
                                     storage=settings.storage, address=settings.address, verbose=settings.verbose,
                                     dry_run=settings.dry_run)


def prepare_run_dir(settings: SweepSettings, run_dir: str) -> None:
    """A new sweep never lands in an existing one's directory (two experiments in one folder, sweep.json
    overwritten): refused, or replaced with --overwrite. A recipe's existing parts are continued."""
    exists = read_json(join(run_dir, SWEEP_RECORD)) is not None
    if settings.overwrite:
        remove(run_dir, keep=LOCK_FILES)
    elif exists and not settings.resume and not settings.recipe:
        raise UserError(f"run directory {run_dir} already holds a sweep: continue it with --resume --name "
                        f"{run_name(run_dir)}, replace it with --overwrite, or choose another --name")


def final_stage_preset(settings: SweepSettings) -> str | None:
    """The attack preset the user chose; recipes default to the one that produced the published numbers (the
    authors' evaluation script); None: each dataset's default."""
    return settings.attack or (RECIPE_ATTACK_PRESET if settings.recipe else None)


def attack_overrides(settings: SweepSettings) -> dict:
    return {"budget": settings.budget, "step": settings.step, "iters": settings.attack_iters}


def selection_sets(settings: SweepSettings, planned: Plan) -> dict:
    """One adversarial set on the selection split per distinct pretrained model and data among the planned
    trials (the final stage's attack: the same cached set it scores on), crafted before the trials and put in
    Ray's object store; each trial fetches its own and reports its ASR at every evaluation."""
    sets = {}
    for config in planned.configs:
        attack = attack_config(final_stage_preset(settings) or default_attack_preset(config.dataset),
                               **attack_overrides(settings))
        spec = AdversarialSetSpec.from_trial(config, attack, planned.split)
        if spec not in sets:
            sets[spec] = ray.put(adversarial_set(spec).adversarial_images())
    return sets


def reports_asr(settings: SweepSettings) -> bool:
    """Whether trials get an adversarial set: optuna-mo and mo-asha select on ASR; otherwise whenever the final
    stage will craft it anyway."""
    return selects_on_asr(settings) is not None or not settings.no_attack


def warm_up_sources(settings: SweepSettings, configs: list) -> None:
    """Find or pretrain each source model here, where its progress is visible, not in many trials at once."""
    sources = {(c.arch, c.weights, c.source_images, c.source_iters, c.cache_dir): c for c in configs
               if get_method(c.method).needs_pretrained or reports_asr(settings)}
    for config in sources.values():
        pretrained_for(config)


def tracking_callbacks(settings: SweepSettings, planned: Plan) -> list:
    """Ray's own MLflow logger, when asked for: every trial a run of the experiment named after the sweep."""
    if not settings.mlflow_uri:
        return []
    if importlib.util.find_spec("mlflow") is None:  # Ray's callback would fail only once the experiment starts
        raise UserError("--mlflow-uri needs MLflow: pip install 'renotune[mlflow]'")
    import mlflow
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    try:  # reach the tracking server (or store) now: a wrong URI is one line here, not a traceback mid-sweep
        mlflow.MlflowClient(tracking_uri=settings.mlflow_uri).search_experiments(max_results=1)
    except Exception as error:  # MLflow raises many kinds; each is the user's URI or server
        raise UserError(f"--mlflow-uri {settings.mlflow_uri}: {str(error).splitlines()[0]}") from None
    return [MLflowLoggerCallback(tracking_uri=settings.mlflow_uri, experiment_name=planned.name, save_artifact=False)]


def new_tuner(settings: SweepSettings, planned: Plan, storage: str, trainable) -> tune.Tuner:
    status = LiveStatus(set(planned.space.parameters), planned.expected_trials, planned.split)
    return tune.Tuner(
        trainable, param_space=planned.values,
        run_config=tune.RunConfig(
            name=planned.name, storage_path=storage, verbose=1 if settings.verbose else 0,
            # The latest checkpoint is all that resume and the final stage read.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=2),  # e.g. a CUDA OOM when fractions overpack a GPU
            callbacks=[status, *tracking_callbacks(settings, planned)],
        ),
        tune_config=tune.TuneConfig(
            search_alg=searcher(settings.search, settings.seed, planned.split),
            scheduler=scheduler(settings.scheduler, planned.longest, min(c.eval_every for c in planned.configs),
                                planned.split),
            num_samples=settings.num_samples, max_concurrent_trials=settings.max_concurrent, reuse_actors=True,
        ),
    )


def sweep_trainable(settings: SweepSettings, planned: Plan):
    """The trainable with this sweep's resources, checkpoint pace and the adversarial sets its trials report
    ASR on."""
    sets = selection_sets(settings, planned) if reports_asr(settings) else None
    # A trial a scheduler stops may end at any report: then every `checkpoint_every` checkpoint is kept in
    # pace, so the final stage has the model it stopped at (and --include-stopped something to attack).
    pace = MIN_CHECKPOINT_INTERVAL_S if settings.scheduler == "fifo" else 0.0
    trainable = tune.with_parameters(transfer_trainable, adversarial_sets=sets, min_checkpoint_interval_s=pace)
    return tune.with_resources(trainable, {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial})


def sweep_tuner(settings: SweepSettings, planned: Plan, storage: str) -> tune.Tuner:
    """The interrupted Tuner restored, or a new one: also on --resume of a sweep stopped before Tune saved its
    first experiment state (while sources warmed up or sets were crafted): no trial had started."""
    run_dir, trainable = join(storage, planned.name), sweep_trainable(settings, planned)
    if settings.resume and tune.Tuner.can_restore(run_dir):
        return tune.Tuner.restore(run_dir, trainable=trainable, resume_unfinished=True, resume_errored=True)
    return new_tuner(settings, planned, storage, trainable)


def collect_trials(settings: SweepSettings, planned: Plan, storage: str) -> str:
    """trials.parquet from the experiment state; SweepInterrupted, naming the command that continues, when
    trials are unfinished. Returns the run directory."""
    run_dir = join(storage, planned.name)
    analysis = ExperimentAnalysis(run_dir)
    write_rows(trial_rows(analysis), join(run_dir, TRIALS_TABLE))
    print(f"trials table: {join(run_dir, TRIALS_TABLE)}")
    waiting = len(unfinished(analysis)) + max(0, planned.expected_trials - len(analysis.trials))
    if waiting:
        raise SweepInterrupted(f"interrupted with {waiting} of {planned.expected_trials} trials unfinished; "
                               f"continue with: python -m tuner.sweep {continue_flags(settings, planned)} --storage "
                               f"{storage}")
    return run_dir


def continue_flags(settings: SweepSettings, planned: Plan) -> str:
    """The flags that continue an interrupted sweep (a recipe continues its unfinished parts by name)."""
    if settings.recipe:
        return f"--recipe {settings.recipe} --name {settings.name}"
    return f"--resume --name {planned.name}"


def run_trials(settings: SweepSettings, planned: Plan, storage: str, extra: dict,
               ray_log: Path | None) -> tuple[str, ResultGrid]:
    """One sweep (resumed when settings.resume); its run directory and results once every trial ended."""
    run_dir = join(storage, planned.name)
    if not settings.resume:  # first, so that --resume can continue a sweep killed while it warms up
        write_json(sweep_record(settings, planned.space.name, run_dir) | extra, join(run_dir, SWEEP_RECORD))
    warm_up_sources(settings, planned.configs)
    tuner = sweep_tuner(settings, planned, storage)
    started = time.time()
    print(f"sweep {planned.name}: space {planned.space.name} ({planned.space.description}); {settings.search} search, "
          f"{settings.scheduler} scheduler; {planned.expected_trials} trials; results in {join(storage, planned.name)}"
          + (f"; Ray's output in {ray_log}" if ray_log else ""), flush=True)
    with ray_output_to(ray_log):
        try:
            results = tuner.fit()
        except OSError as error:  # the driver's own writes: experiment state, Ray's log
            check_storage(error, settings, planned, storage)
            raise
    for error in results.errors:  # a trial's checkpoint or result the storage refused
        check_storage(error, settings, planned, storage)
    print(f"trials done in {time.time() - started:.0f} s: {len(results)} trials, {results.num_errors} failed")
    return collect_trials(settings, planned, storage), results


def check_storage(error: BaseException, settings: SweepSettings, planned: Plan, storage: str) -> None:
    """One line, instead of Ray's tracebacks, when the sweep stopped because the storage refused a write (full,
    read-only): what is written stays readable (every file is replaced atomically) and --resume continues."""
    failure = storage_failure(error)
    if failure is not None:
        raise StorageError(f"storage {join(storage, planned.name)}: {storage_problem(failure)}; free space or make it "
                           f"writable, then continue with: python -m tuner.sweep {continue_flags(settings, planned)} "
                           f"--storage {storage}")


def start_ray(settings: SweepSettings, ray_log: Path | None) -> None:
    """Ray for this process, started once: a second sweep in the same Python process reuses it."""
    if ray.is_initialized():
        return
    with ray_output_to(ray_log):
        if settings.address:
            ray.init(address=settings.address, configure_logging=False, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, include_dashboard=False,
                     configure_logging=False, log_to_driver=False)


def final_stage(settings: SweepSettings, run_dir: str) -> None:
    run_attack_stage(run_dir, settings.select, settings.top_k, final_stage_preset(settings),
                     include_stopped=settings.include_stopped, **attack_overrides(settings))
    print(f"robustness table: {join(run_dir, ROBUSTNESS_TABLE)}")


def refit_chosen(settings: SweepSettings, planned: Plan, run_dir: str, ray_log: Path | None) -> None:
    """--refit: the configurations chosen on validation re-trained on train + validation (`tuner.refit`), then
    scored by the final stage beside the searched trials."""
    chosen = chosen_configurations(read_rows(join(run_dir, ROBUSTNESS_TABLE)), settings.include_stopped,
                                   settings.min_accuracy)
    tuner = refit_tuner(run_dir, chosen, {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
                        settings.max_concurrent, settings.verbose)
    print(f"refit {planned.name}: {len(chosen)} configurations chosen on validation, re-trained on training + "
          f"validation images with the same seeds; results in {join(run_dir, REFIT_EXPERIMENT)}", flush=True)
    with ray_output_to(ray_log):
        results = tuner.fit()
    for error in results.errors:
        check_storage(error, settings, planned, location(settings.storage))
    waiting = len(unfinished(ExperimentAnalysis(join(run_dir, REFIT_EXPERIMENT))))
    if waiting:
        raise SweepInterrupted(f"interrupted with {waiting} refit trials unfinished; continue with: python -m tuner."
                               f"sweep {continue_flags(settings, planned)} --storage {location(settings.storage)}")
    final_stage(settings, run_dir)


def attack_and_report(settings: SweepSettings, plans: list[Plan], run_dirs: list[str],
                      ray_log: Path | None) -> tuple[str, dict]:
    for planned, run_dir in zip(plans, run_dirs, strict=True):
        final_stage(settings, run_dir)
        if planned.refit:
            refit_chosen(settings, planned, run_dir, ray_log)
    report, summary = build_report(run_dirs, recipe=settings.recipe, include_stopped=settings.include_stopped,
                                   min_accuracy=settings.min_accuracy)
    print("\n".join(front_digest(summary)))
    print(f"report: {report}")
    return report, summary


def run_sweep_settings(settings: SweepSettings) -> SweepOutcome:
    """The whole sweep, for its checked settings."""
    # The driver warms up sources, crafts and scores between the trials' phases: the local CPUs Ray gets.
    use_threads(None if settings.address else settings.num_cpus)
    storage = location(settings.storage)
    if settings.resume:
        settings = resumed_settings(settings, join(storage, settings.name))
    plans = plans_for(settings)
    if settings.dry_run:
        print(plan_summary(settings, plans))
        return SweepOutcome()
    if settings.address and not ray.is_initialized():
        check_reachable(settings.address)  # before the run directory is touched
    if settings.gpus_per_trial == GPUS_AUTO:  # measured alone before Ray starts trials; sweep.json records the number
        settings = resolve_auto_gpus(settings, plans)
        use_threads(None if settings.address else settings.num_cpus)  # measuring set the trial's threads
    with sweep_locks([join(storage, planned.name) for planned in plans]):
        return _locked_sweep(settings, plans, storage)


def _locked_sweep(settings: SweepSettings, plans: list[Plan], storage: str) -> SweepOutcome:
    for planned in plans:
        prepare_run_dir(settings, join(storage, planned.name))
    ray_log = None if settings.verbose else ray_log_file(storage, plans[0].name)
    start_ray(settings, ray_log)
    outcome = SweepOutcome()
    for planned in plans:
        part_settings = settings
        if settings.recipe and read_json(join(join(storage, planned.name), SWEEP_RECORD)) is not None:
            part_settings = replace(settings, resume=True)
        extra = {"protocol": planned.protocol} | ({"recipe": settings.recipe} if settings.recipe else {})
        run_dir, results = run_trials(part_settings, planned, storage, extra, ray_log)
        outcome.run_dirs.append(run_dir)
        outcome.result_grids.append(results)
    if not settings.no_attack:
        outcome.report, outcome.summary = attack_and_report(settings, plans, outcome.run_dirs, ray_log)
    for run_dir in outcome.run_dirs:
        print(f"run directory {run_dir}: {human_size(size_in_bytes(run_dir))}")
    return outcome
