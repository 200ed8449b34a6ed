"""Every transfer method: what trains, where it starts, which regulariser it adds, dropout and SWA."""
import copy

import pytest
import torch

from tests.conftest import tiny_config
from trainables.config import resolve_config
from trainables.data.digits import digits_split
from trainables.data.registry import TransferData
from trainables.data.tensors import TensorImageDataset
from trainables.delta_attention import AttentiveFeatureDistillation, attention_weighted_distance
from trainables.methods import METHODS
from trainables.regularizers import FeatureDistillation, HeadPenalty, StartingPointPenalty, feature_distillation
from trainables.train import TransferRun
from trainables.trial import prepare_run, pretrained_for

ALL_METHODS = sorted(METHODS)


def backbone_snapshot(run: TransferRun) -> dict[str, torch.Tensor]:
    head = run.student.layout.head + "."
    return {k: v.clone() for k, v in run.student.body.state_dict().items() if not k.startswith(head)}


def first_batch(run: TransferRun) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(run.data.train[i] for i in range(run.config.batch_size)))
    return torch.stack(images), torch.tensor(labels)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_initialisation_and_which_parameters_train(method):
    config = resolve_config(tiny_config(method))
    run = prepare_run(config)
    theta0 = {k: v for k, v in pretrained_for(config).state.items() if not k.startswith("fc.")}
    start = backbone_snapshot(run)
    starts_at_theta0 = all(torch.equal(start[k], theta0[k]) for k in theta0 if "num_batches" not in k)
    assert starts_at_theta0 == (METHODS[method].init == "pretrained")

    head_before = run.student.head.weight.detach().clone()
    images, labels = first_batch(run)
    for _ in range(2):
        run.step(images, labels)
    after = backbone_snapshot(run)
    changed = [k for k in start if not torch.equal(start[k], after[k])]
    assert not torch.equal(head_before, run.student.head.weight)
    if METHODS[method].trains == "head":
        assert changed == []  # weights and BatchNorm statistics of the backbone stay theta0
        assert all(not p.requires_grad for p in run.student.backbone_parameters().values())
    else:
        assert any(k.endswith("conv1.weight") for k in changed) and any("layer4" in k for k in changed)


def test_regularisers_on_hand_computed_values():
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        head.bias.copy_(torch.tensor([1.0, 2.0]))
    assert HeadPenalty(head, beta=0.01, bias=False)().item() == pytest.approx(0.5 * 0.01 * 30.0)
    assert HeadPenalty(head, beta=0.01, bias=True)().item() == pytest.approx(0.5 * 0.01 * (30.0 + 5.0))

    student = [torch.ones(1, 2, 1, 1), torch.zeros(1, 1, 2, 2)]
    teacher = [torch.zeros(1, 2, 1, 1), torch.full((1, 1, 2, 2), 2.0)]
    assert feature_distillation(student, teacher).item() == pytest.approx(1.0 + 4.0)

    run = prepare_run(resolve_config(tiny_config("l2sp")))
    assert isinstance(run.regularizer, StartingPointPenalty)
    backbone = run.student.backbone_parameters()
    with torch.no_grad():
        for parameter in backbone.values():
            parameter.add_(0.01)
    elements = sum(parameter.numel() for parameter in backbone.values())
    assert run.regularizer(None, []).item() == pytest.approx(1e-4 * elements, rel=1e-3)


def by_hand_penalty(run: TransferRun, student: torch.nn.Module, images: torch.Tensor) -> float:
    """The method's penalty recomputed outside the run: L2-SP from the pretrained file's tensors, feature
    distillation from a forward pass of the teacher."""
    regularizer = run.regularizer
    if isinstance(regularizer, StartingPointPenalty):
        theta0 = pretrained_for(run.config).state
        return sum((p - theta0[name]).pow(2).sum() for name, p in student.backbone_parameters().items()).item()
    with torch.no_grad():
        _, teacher_stages, _ = regularizer.teacher.forward_features(images)
    if isinstance(regularizer, AttentiveFeatureDistillation):  # DELTA distils its attended convolutions' outputs
        outputs = {}
        for name in regularizer.layers:
            student.body.get_submodule(name).register_forward_hook(
                lambda module, inputs, output, name=name: outputs.__setitem__(name, output))
        torch.manual_seed(1)
        student(images)
        attended = [outputs[name] for name in regularizer.layers]
        return attention_weighted_distance(attended, teacher_stages, regularizer.attention).item()
    torch.manual_seed(1)
    _, stages, _ = student.forward_features(images)
    return feature_distillation(stages, teacher_stages).item()


@pytest.mark.parametrize("method", ALL_METHODS)
def test_training_loss_is_cross_entropy_plus_the_methods_regulariser(method):
    config = resolve_config(tiny_config(method, lambda_feat=2.0, lambda_l2sp=0.5))
    spec = METHODS[method]
    run = prepare_run(config)
    images, labels = first_batch(run)
    run.step(images, labels)  # move away from theta0 so L2-SP is non-zero
    run.report()  # resets the running window
    student = copy.deepcopy(run.student).train(spec.trains == "all")
    head_term = HeadPenalty(student.head, config.head_beta, config.head_penalty_bias)().item()
    torch.manual_seed(1)
    run.step(images, labels)
    window = run._window
    weight = getattr(config, spec.regularizer_class.weight_key) if spec.regularizer else 0.0
    # float32 sums: a penalty of DELTA's own (sum) scale makes the loss large, and its rounding with it
    assert window["loss"] - window["cross_entropy"] - weight * window["penalty"] == \
        pytest.approx(head_term, rel=1e-4, abs=1e-6 * window["loss"])
    if spec.regularizer is None:
        assert window["penalty"] == 0.0 and run.regularizer is None
    elif not spec.adversarial:  # adversarial training doubles the batch with PGD examples: checked on the others
        assert window["penalty"] == pytest.approx(by_hand_penalty(run, student, images), rel=1e-4)
    assert (spec.regularizer_class in (FeatureDistillation, AttentiveFeatureDistillation)) == (weight == 2.0)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_weight_decay_goes_to_the_backbone_and_the_head_has_its_own_penalty(method):
    config = resolve_config(tiny_config(method))
    run = prepare_run(config)
    head_group, *backbone_group = run.optimizer.param_groups
    assert head_group["weight_decay"] == 0.0  # the embedded profile: the head has its penalty alone
    if METHODS[method].trains == "head":
        assert backbone_group == []
    else:
        expected = 0.0 if method == "l2sp" else config.weight_decay
        assert backbone_group[0]["weight_decay"] == expected


def test_spatial_dropout_follows_each_tap_in_training_only():
    run = prepare_run(resolve_config(tiny_config("renofeation", dropout_p=0.5)))
    network = run.student
    seen = {}
    network.body.layer2.register_forward_pre_hook(lambda module, inputs: seen.__setitem__("layer2_in", inputs[0]))
    images, _ = first_batch(run)

    network.train()
    torch.manual_seed(0)
    _, stages, _ = network.forward_features(images)
    dropped = seen["layer2_in"]
    per_channel_zero = (dropped == 0).flatten(2).all(dim=2)
    assert per_channel_zero.any() and not per_channel_zero.all()  # whole channels dropped, not all
    kept = ~per_channel_zero
    assert torch.allclose(dropped[kept], 2.0 * stages[0][kept])  # the tap reads the stage *before* dropout

    network.eval()
    _, stages, _ = network.forward_features(images)
    assert torch.equal(seen["layer2_in"], stages[0])


def test_swa_average_is_the_mean_of_snapshots_and_batchnorm_is_recomputed():
    split = digits_split()
    images, labels = split.train_images[:64], split.train_labels[:64]
    plain = TensorImageDataset(images, labels)
    data = TransferData("digits", 10, plain, None, plain, plain)
    config = resolve_config(tiny_config("delta_r", swa=True, iters=2, swa_iters=6, swa_every=3, batch_size=16))
    run = TransferRun(config, data, pretrained_for(config))
    snapshots = []
    for images_batch, labels_batch in (first_batch(run) for _ in range(config.total_iters)):
        run.step(images_batch, labels_batch)
        if run.iteration > config.iters and (run.iteration - config.iters) % config.swa_every == 0:
            snapshots.append({k: v.detach().clone() for k, v in run.student.named_parameters()})
    assert len(snapshots) == 2 and run.averaged.n_averaged.item() == 2
    averaged = dict(run.averaged.module.named_parameters())
    for name in snapshots[0]:
        assert torch.allclose(averaged[name], (snapshots[0][name] + snapshots[1][name]) / 2, atol=1e-6)

    model = run.evaluation_model()
    assert model is run.averaged.module
    network = model.body
    with torch.no_grad():
        stem = network.conv1((images - model.mean) / model.std)
    expected_mean = stem.mean(dim=(0, 2, 3))  # equal batches: the mean of batch means is the data mean
    assert torch.allclose(network.bn1.running_mean, expected_mean, atol=1e-5)
    assert not torch.allclose(network.bn1.running_mean, run.student.body.bn1.running_mean)
