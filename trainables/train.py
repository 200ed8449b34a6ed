"""The one training loop every transfer method runs; its MethodSpec decides init, what trains, the
regulariser, spatial dropout, SWA and adversarial examples.

Iteration-based like the paper: SGD, cosine LR per iteration over `iters`, then (with SWA) `swa_iters` at a
constant LR (half the main stage's unless `swa_lr` says; from a new SGD with `swa_fresh_optimizer`, as the
authors' separate SWA run) with a snapshot averaged every `swa_every` iterations and BatchNorm statistics
recomputed on the training data. Batch k is a function of (seed, k) and every random draw comes from the
checkpointed torch RNG, so a run resumed from a checkpoint continues exactly as if never stopped (with
num_workers=0).
"""
from collections.abc import Callable, Iterator
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from trainables.advertorch_compat import LinfPGDAttack
from trainables.config import TrialConfig, selection_metrics
from trainables.data.device_decode import collate_encoded, decode_batch, decodes_on_device
from trainables.data.registry import TransferData
from trainables.evaluation import attack_counts, predictions
from trainables.methods import get_method
from trainables.models.backbones import TransferNet
from trainables.models.network import build_network
from trainables.models.weights import Pretrained
from trainables.precision import precision_for
from trainables.regularizers import HeadPenalty, Regularizer, RunParts


class IterationBatches(Sampler[list[int]]):
    """Batches for iterations [start, stop): a fresh seeded permutation per epoch, so batch k depends only
    on (seed, k) and a resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int, stop: int):
        self.size, self.batch_size, self.seed, self.start, self.stop = size, min(batch_size, size), seed, start, stop
        self.per_epoch = size // self.batch_size

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[int]]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        for iteration in range(self.start, self.stop):
            batch_epoch, position = divmod(iteration, self.per_epoch)
            if batch_epoch != epoch:
                epoch = batch_epoch
                order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            yield order[position * self.batch_size:(position + 1) * self.batch_size].tolist()


class TransferRun:
    """One trial's model, optimiser and schedule state, trained in place and checkpointable at any report."""

    def __init__(self, config: TrialConfig, data: TransferData, pretrained: Pretrained | None,
                 device: str | torch.device = "cpu"):
        self.config, self.spec, self.data = config, get_method(config.method), data
        self.device = torch.device(device)
        if self.spec.needs_pretrained and pretrained is None:
            raise ValueError(f"method {config.method} needs pretrained weights")
        torch.manual_seed(config.seed)
        self.student = build_network(config.arch, data.num_classes,
                                     pretrained if self.spec.init == "pretrained" else None, config.taps)
        if self.spec.init == "random":
            self.student.reset_parameters()
        if config.dropout:
            self.student.enable_spatial_dropout(config.dropout_p)
        self.precision = precision_for(self.device, config.amp, config.channels_last)
        self.precision.module(self.student.to(self.device))
        self.head_penalty = HeadPenalty(self.student.head, config.head_beta, config.head_penalty_bias)
        self.regularizer: Regularizer | None = None if self.spec.regularizer is None else \
            self.spec.regularizer_class(RunParts(config, self.student, pretrained, data))
        if self.regularizer is not None:
            self.precision.module(self.regularizer)  # the teacher computes like the student
        self.grad_scaler = self.precision.grad_scaler()
        self.optimizer = self._optimizer(config.lr)
        self.schedule = CosineAnnealingLR(self.optimizer, T_max=config.iters)
        self.averaged = AveragedModel(self.student) if config.swa else None
        self.swa_schedule: SWALR | None = None  # created when the SWA stage starts: it takes over the LR
        self.attack = LinfPGDAttack(
            self.student, loss_fn=nn.CrossEntropyLoss(reduction="sum"), eps=config.adv_eps,
            nb_iter=config.adv_steps, eps_iter=config.adv_step, rand_init=True, clip_min=0.0, clip_max=1.0,
        ) if self.spec.adversarial else None
        self.iteration = 0
        self._previous_report = 0
        self._window = self._empty_window()
        self._bn_updated_at = -1
        # The selection split's images attacked on theta0, in split order: reports then add `<split>_asr`.
        self.adversarial_images: torch.Tensor | None = None

    @property
    def total_iters(self) -> int:
        return self.config.total_iters

    @property
    def checkpoint_due(self) -> bool:
        """Whether the report just made should carry a checkpoint."""
        # A boundary crossed since the last report, not only hit: eval_every need not divide checkpoint_every
        # (an --iters budget scales both and rounds each).
        every = self.config.checkpoint_every
        return (self.iteration // every > self._previous_report // every
                or self.iteration in (self.config.iters, self.total_iters))

    @property
    def finished(self) -> bool:
        return self.iteration >= self.total_iters

    @property
    def in_swa_stage(self) -> bool:
        return self.config.swa and self.iteration >= self.config.iters

    @property
    def swa_started(self) -> bool:
        """Whether the SWA stage has taken a step: it starts at its first step, not at the main stage's end."""
        return self.config.swa and self.iteration > self.config.iters

    def reports(self, after_step: Callable[[], None] | None = None) -> Iterator[dict]:
        """Train to the end; yield metrics every `eval_every` iterations and at the end of each stage, calling
        `after_step` (e.g. a progress bar's update) after every step."""
        if self.regularizer is not None:
            with self.precision.autocast():  # cached teacher features in the dtype the live teacher gives
                self.regularizer.before_training()
        batches = self._training_batches()
        self._previous_report = self.iteration
        while self.iteration < self.total_iters:
            images, labels = next(batches)
            self.step(images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True))
            if after_step is not None:
                after_step()
            if self.iteration % self.config.eval_every == 0 or self.iteration in (self.config.iters, self.total_iters):
                yield self.report()
                self._previous_report = self.iteration

    def _training_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) of the iterations left; image files are decoded and augmented on the GPU when
        `gpu_decode` allows (trainables.data.device_decode)."""
        sampler = IterationBatches(len(self.data.train), self.config.batch_size, self.config.seed, self.iteration,
                                   self.total_iters)
        if not decodes_on_device(self.data.train, self.device, self.config.gpu_decode):
            yield from self._loader(self.data.train, sampler)
            return
        encoded = self.data.train.encoded()
        for files, labels, indices in self._loader(encoded, sampler, collate_fn=collate_encoded):
            yield decode_batch(files, indices, encoded, self.device), labels

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if self.in_swa_stage and self.swa_schedule is None:
            self._start_swa_stage()
        if self.attack is not None:
            images, labels = self._with_adversarial(images, labels)
        self.student.train(self.spec.trains == "all")  # a frozen backbone keeps its BatchNorm statistics
        images = self.precision.images(images)
        with self.precision.autocast():
            logits, stages, _ = self.student.forward_features(images)
            cross_entropy = F.cross_entropy(logits, labels)
            loss = cross_entropy + self.head_penalty()
            penalty = torch.zeros(())
            if self.regularizer is not None:
                penalty = self.regularizer(images, stages)
                loss = loss + getattr(self.config, self.regularizer.weight_key) * penalty
        self.optimizer.zero_grad(set_to_none=True)
        self.grad_scaler.scale(loss).backward()
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        self.iteration += 1
        if self.swa_schedule is not None:
            self.swa_schedule.step()
            if (self.iteration - self.config.iters) % self.config.swa_every == 0:
                self.averaged.update_parameters(self.student)
        else:
            self.schedule.step()
        for key, value in (("loss", loss), ("cross_entropy", cross_entropy), ("penalty", penalty)):
            self._window[key] += float(value.detach())
        self._window["steps"] += 1

    def evaluation_model(self) -> TransferNet:
        """What this run stands for now: the SWA average (BatchNorm recomputed) once it has a snapshot."""
        if self.averaged is None or self.averaged.n_averaged.item() == 0:
            return self.student
        if self._bn_updated_at != self.iteration:
            loader = self._loader(self.data.train, batch_size=self.config.batch_size, shuffle=False)
            update_bn(loader, self.averaged, device=self.device)
            self._bn_updated_at = self.iteration
        return self.averaged.module

    def report(self) -> dict:
        steps = max(self._window["steps"], 1)
        metrics = {
            "iteration": self.iteration,
            "total_iters": self.total_iters,
            "stage": "swa" if self.config.swa and self.iteration > self.config.iters else "main",
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": self._window["loss"] / steps,
            "cross_entropy": self._window["cross_entropy"] / steps,
        }
        if self.regularizer is not None:
            metrics[self.regularizer.metric] = self._window["penalty"] / steps
        metrics |= self._accuracy_metrics()
        self._window = self._empty_window()
        return metrics

    @staticmethod
    def _empty_window() -> dict:
        """Running sums over the steps since the last report."""
        return {"loss": 0.0, "cross_entropy": 0.0, "penalty": 0.0, "steps": 0}

    def _accuracy_metrics(self) -> dict:
        """Accuracy (and ASR, given adversarial images) on the selection split: validation when there is one.
        Test numbers are never reported while training, so nothing can be selected on them by accident."""
        split = self.data.selection_split
        accuracy, asr = selection_metrics(split)
        model = self.evaluation_model()
        predicted, labels = predictions(model, self.data.split(split), self.device, self.precision)
        # From integer counts, like the final stage, so both report the same number for the same checkpoint.
        metrics = {"selection_split": split, accuracy: 100.0 * int((predicted == labels).sum()) / len(labels)}
        if self.adversarial_images is not None:
            # Its own RNG stream (a DataLoader draws a seed): reporting ASR must not change what the trial trains.
            with torch.random.fork_rng(devices=[]):
                adversarial, _ = predictions(model, TensorDataset(self.adversarial_images, labels), self.device,
                                             self.precision)
            metrics[asr] = attack_counts(labels, predicted, adversarial).asr
        return metrics

    def evaluation_state(self) -> dict:
        """The evaluation model's weights with what rebuilds it: all the attack stage needs."""
        return {"config": asdict(self.config), "num_classes": self.data.num_classes, "iteration": self.iteration,
                "model": self.evaluation_model().state_dict()}

    def state_dict(self) -> dict:
        """Everything needed to resume exactly."""
        return {
            "config": asdict(self.config),
            "iteration": self.iteration,
            "student": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "averaged": self.averaged.state_dict() if self.averaged is not None else None,
            "regularizer": self.regularizer.checkpoint_state() if self.regularizer is not None else {},
            "bn_updated_at": self._bn_updated_at,
            "grad_scaler": self.grad_scaler.state_dict(),  # empty unless fp16 scales the loss
            "window": dict(self._window),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def load_state_dict(self, state: dict) -> None:
        self.iteration = state["iteration"]
        self.student.load_state_dict(state["student"])
        if self.swa_started:  # first: the stage's (new) optimizer is the one the saved state belongs to
            self._start_swa_stage()  # constant LR: the scheduler has no state worth restoring
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.averaged is not None:
            self.averaged.load_state_dict(state["averaged"])
        if self.regularizer is not None:
            self.regularizer.load_checkpoint_state(state["regularizer"])
        self._bn_updated_at = state["bn_updated_at"]
        if state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        self._window = dict(state["window"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if state["rng_cuda"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])

    def _optimizer(self, lr: float) -> torch.optim.SGD:
        backbone = list(self.student.backbone_parameters().values())
        if self.spec.trains == "head":
            for parameter in backbone:
                parameter.requires_grad_(False)
            backbone = []
        # The authors' SGD decays every parameter, the head too, on top of its penalty (head_weight_decay);
        # without it the head has head_penalty alone.
        head_decay = self.config.weight_decay if self.config.head_weight_decay else 0.0
        groups = [{"params": list(self.student.head.parameters()), "weight_decay": head_decay}]
        if backbone:
            groups.append({"params": backbone, "weight_decay": self.config.weight_decay})
        return torch.optim.SGD(groups, lr=lr, momentum=self.config.momentum)

    def _start_swa_stage(self) -> None:
        # The authors run the SWA stage as a new process from the main stage's checkpoint: a new SGD, no momentum.
        if self.config.swa_fresh_optimizer:
            self.optimizer = self._optimizer(self.config.swa_learning_rate)
        self.swa_schedule = SWALR(self.optimizer, swa_lr=self.config.swa_learning_rate, anneal_epochs=0)

    def _with_adversarial(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean + PGD examples crafted on the current student (white-box, the standard adversarial training)."""
        self.student.eval()
        with self.precision.autocast():
            adversarial = self.attack.perturb(images, labels)
        return torch.cat([images, adversarial]), torch.cat([labels, labels])

    def _loader(self, dataset: Dataset, batch_sampler: Sampler | None = None, **options) -> DataLoader:
        # Its own generator: creating a loader must not draw from the global RNG that checkpoints restore.
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=self.config.num_workers,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator(), **options)
