"""The values the paper recipes use, pinned against the authors' code and the paper's text (docs/fidelity.md).

Each expected value is written here, with the line it comes from: `enyac-group/Renofeation@84935a9` (the commit
of the scripts and of eval_robustness.py; train.py line numbers are of that commit's train.py), DELTA's
`lixingjian/DELTA`, or the paper (../shared/paper/renofeation.md). Every value under test is read from our
code, so a drift in either place fails here and points at the ledger entry to update.

The feature distance's measurement and delta_att's procedure are checked against by-hand computations in
tests/test_recipe_details.py and tests/test_delta_attention.py; their constants are pinned here.
"""
import math

import pytest
import torch

from trainables.attack import feature_objective
from trainables.attack_presets import ATTACK_PRESETS
from trainables.config import resolve_config
from trainables.evaluation import attack_counts
from trainables.methods import DELTA_PER_DATASET, METHODS, RANDOM_INIT_PER_DATASET
from trainables.models.layout import MOBILENET_V2_STAGES, RESNET_STAGES
from trainables.regularizers import feature_distillation
from tuner.paper_results import DATASETS

REPO = "enyac-group/Renofeation@84935a9"
PAPER_DATASETS = ("dog", "bird", "action", "indoor", "flower")


def paper_config(method: str, dataset: str, **overrides):
    """A trial's resolved config on a paper dataset (the root is only checked for being given)."""
    return resolve_config({"method": method, "dataset": dataset, "data_root": "/data/not-read", **overrides})


# --- DELTA: scripts/DELTA.sh, one block per dataset (lr / wd / mmt / lmda) -------------------------------------

DELTA_SH = {
    "flower": {"lr": 5e-3, "weight_decay": 1e-4, "momentum": 0.9, "lambda_feat": 0.1},  # DELTA.sh:10-13
    "indoor": {"lr": 1e-2, "weight_decay": 1e-4, "momentum": 0.0, "lambda_feat": 0.5},  # DELTA.sh:20-23
    "action": {"lr": 5e-3, "weight_decay": 0.0, "momentum": 0.0, "lambda_feat": 1.0},  # DELTA.sh:30-33
    "bird": {"lr": 1e-2, "weight_decay": 0.0, "momentum": 0.0, "lambda_feat": 0.1},  # DELTA.sh:41-44
    "dog": {"lr": 1e-2, "weight_decay": 0.0, "momentum": 0.0, "lambda_feat": 10.0},  # DELTA.sh:51-54
}


def test_delta_per_dataset_table_is_the_authors_script():
    assert {d: dict(v) for d, v in DELTA_PER_DATASET.items()} == DELTA_SH


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_delta_trials_resolve_to_the_script_values(dataset):
    config = paper_config("delta", dataset)
    for key, value in DELTA_SH[dataset].items():
        assert getattr(config, key) == value, key
    assert config.iters == 30_000  # DELTA.sh:3 iter=30000; paper Sec. 5.1 "30,000 iterations"
    assert config.batch_size == 64  # DELTA.sh:14 --batch_size 64; paper Sec. 5.1
    assert config.head_beta == 0.01  # DELTA.sh:14 --beta 1e-2; train.py:301; paper Sec. 5.1
    assert config.lambda_l2sp == 0.0  # DELTA.sh:5 splmda=0 (never passed: train.py:303 default 0)
    assert not config.dropout and not config.swa  # DELTA.sh:14: no --dropout, no --swa


# --- Re-training: scripts/Re-training.sh --------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_retrain_is_the_authors_fixed_schedule(dataset):
    config = paper_config("retrain", dataset)
    assert config.iters == 90_000  # Re-training.sh:3; paper Sec. 5.1 "90,000 iterations"
    assert config.lr == 0.01  # Re-training.sh:8
    assert config.weight_decay == 5e-3  # Re-training.sh:9
    assert config.momentum == 0.9  # Re-training.sh:10
    assert config.lambda_feat == 0.0  # Re-training.sh:6 lmda=0
    assert config.batch_size == 64 and config.head_beta == 0.01  # Re-training.sh:14 --batch_size 64 --beta 1e-2
    assert not config.dropout and not config.swa  # Re-training.sh:14: no --dropout, no --swa
    assert METHODS["retrain"].init == "random"  # Re-training.sh:14 --reinit; train.py:394-397


# --- Renofeation and DELTA-R: scripts/Renofeation.sh ----------------------------------------------------------------

RENOFEATION_LAMBDA = {"flower": 5.0, "indoor": 5.0, "action": 5.0, "bird": 1.0, "dog": 5.0}  # :13, :22, :31, :40, :49


def test_random_init_lambda_table_is_the_authors_script():
    assert {d: dict(v) for d, v in RANDOM_INIT_PER_DATASET.items()} == {"bird": {"lambda_feat": 1.0}}  # :40
    assert METHODS["renofeation"].defaults["lambda_feat"] == 5.0  # Renofeation.sh:13, 22, 31, 49


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_renofeation_stage_one_and_swa_stage_are_the_authors_runs(dataset):
    config = paper_config("renofeation", dataset)
    # Stage 1 (Renofeation.sh:14): --iterations 90000 --lr 1e-2 --weight_decay 5e-3 --momentum 0.9 --reinit
    assert (config.iters, config.lr, config.weight_decay, config.momentum) == (90_000, 0.01, 5e-3, 0.9)
    assert config.lambda_feat == RENOFEATION_LAMBDA[dataset]
    assert config.dropout and config.dropout_p == 0.1  # --dropout 1e-1 (both stages); paper Sec. 5.1 "10%"
    assert config.batch_size == 64 and config.head_beta == 0.01  # --batch_size 64 --beta 1e-2
    # Stage 2 (Renofeation.sh:16): --iterations 30000 --swa --swa_freq 500 --swa_start 0 --const_lr
    assert config.swa and config.swa_iters == 30_000 and config.swa_every == 500
    assert METHODS["renofeation"].init == "random"


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_delta_r_is_renofeation_without_dropout_and_swa(dataset):
    # No script of theirs; paper Sec. 5.2 / Table 7: DELTA-R + DO + SWA is Renofeation, so DELTA-R takes stage 1.
    config, renofeation = paper_config("delta_r", dataset), paper_config("renofeation", dataset)
    for key in ("iters", "lr", "weight_decay", "momentum", "lambda_feat", "batch_size", "head_beta"):
        assert getattr(config, key) == getattr(renofeation, key), key
    assert not config.dropout and not config.swa
    assert METHODS["delta_r"].init == "random"


# --- The fine-tuning baselines: paper Sec. 5.1 (no script of theirs) -------------------------------------------------

@pytest.mark.parametrize("method", ("linear", "finetune", "l2sp"))
def test_fine_tuning_baselines_use_30000_iterations_and_batch_64(method):
    config = paper_config(method, "flower")
    assert config.iters == 30_000 and config.batch_size == 64  # paper Sec. 5.1
    assert config.head_beta == 0.01  # paper Sec. 5.1 "weight decay for the last linear layer is set to 0.01"


def test_l2sp_replaces_weight_decay():
    config = paper_config("l2sp", "flower")
    assert config.weight_decay == 0.0  # train.py:154-157: SGD weight_decay=0 whenever l2sp_lmda > 0
    assert config.lambda_l2sp == 0.01  # ours: train()'s signature default l2sp_lmda=1e-2 (train.py:151)


def test_paper_grid_is_sec_5_1():
    from search_spaces import SPACES

    grid = {name: domain["grid"] for name, domain in SPACES["paper_grid"].parameters.items()}
    # Paper Sec. 5.1: "learning rate in {0.01, 0.005}, momentum in {0, 0.9}, and weight decay in {0, 1e-4}".
    assert {k: sorted(v) for k, v in grid.items()} == {"lr": [0.005, 0.01], "momentum": [0.0, 0.9],
                                                       "weight_decay": [0.0, 1e-4]}


# --- DELTA adversarially trained: paper Sec. 5.5 (no code of theirs) -------------------------------------------------

@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_delta_adv_doubles_delta_and_uses_pgd_3(dataset):
    config = paper_config("delta_adv", dataset)
    assert config.iters == 2 * 30_000  # Sec. 5.5: "DELTA with 2x more iterations"
    assert config.adv_steps == 3  # Sec. 5.5: "three iterations of projected gradient descent"
    for key, value in DELTA_SH[dataset].items():  # ours: DELTA's per-dataset values (DELTA.sh)
        assert getattr(config, key) == value, key
    # Ours, not the paper's (it gives no budget): 0.02 and 0.01 in [0, 1] pixels.
    assert (config.adv_eps, config.adv_step) == (0.02, 0.01)


# --- Architecture: distilled stages, spatial dropout, pretrained weights ---------------------------------------------

def test_distilled_stages_are_the_authors():
    # train.py:378-383 (reg_layers = layer1..layer4, feat_layers 1234: DELTA.sh:6, Renofeation.sh:6)
    assert RESNET_STAGES == ("layer1", "layer2", "layer3", "layer4")
    # fe_mobilenet.py:215: layer1..layer5 = torchvision features regrouped 4, 3, 4, 6, 2 (train.py:305 help: 12345)
    assert MOBILENET_V2_STAGES == ("features.3", "features.6", "features.10", "features.16", "features.18")


def test_spatial_dropout_follows_every_distilled_stage():
    from trainables.models.network import build_network

    network = build_network("resnet18_w8", 3)
    network.enable_spatial_dropout(paper_config("renofeation", "flower").dropout_p)
    # fe_resnet.py:132 one nn.Dropout2d(p), applied after layer1..layer4 (fe_resnet.py:211-222)
    assert [type(m).__name__ for m in network.stage_dropout] == ["Dropout2d"] * len(RESNET_STAGES)
    assert {m.p for m in network.stage_dropout} == {0.1}


@pytest.mark.parametrize("arch", ("resnet18", "resnet50", "resnet101", "mobilenet_v2"))
def test_pretrained_weights_are_torchvisions_first_release(arch):
    from trainables.models.weights import imagenet_weights

    # fe_resnet.py:12-15 (resnet18-5c106cde, resnet50-19c8e357, resnet101-5d3b4d8f), fe_mobilenet.py:10
    # (mobilenet_v2-b0353104): torchvision's original ImageNet release, IMAGENET1K_V1 today.
    assert imagenet_weights(arch).name == "IMAGENET1K_V1"


# --- Data: transforms and normalisation -----------------------------------------------------------------------------

def test_transforms_are_the_authors():
    from torchvision.transforms import v2

    from trainables.data.images import paper_transforms
    from trainables.models.backbones import IMAGENET_MEAN, IMAGENET_STD

    train, test = paper_transforms()
    crop, flip = train.transforms[:2]
    # train.py:340-341: RandomResizedCrop(224) (default scale and ratio), RandomHorizontalFlip()
    assert isinstance(crop, v2.RandomResizedCrop) and crop.size == (224, 224)
    assert crop.scale == (0.08, 1.0) and crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert isinstance(flip, v2.RandomHorizontalFlip) and flip.p == 0.5
    resize, center = test.transforms[:2]
    # train.py:347-348 and eval_robustness.py:101-102: Resize(256), CenterCrop(224)
    assert isinstance(resize, v2.Resize) and list(resize.size) == [256]
    assert isinstance(center, v2.CenterCrop) and center.size == (224, 224)
    # train.py:334-335: ImageNet mean / std (ours inside the model)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


# --- The distillation loss: train.py:170 (MSELoss, mean) summed over the layers at :215-222 ---------------------------

def test_feature_distillation_sums_per_layer_means():
    generator = torch.Generator().manual_seed(0)
    student = [torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 5, 2, 2, generator=generator)]
    teacher = [torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 5, 2, 2, generator=generator)]
    expected = sum(((s - t) ** 2).mean() for s, t in zip(student, teacher))
    assert float(feature_distillation(student, teacher)) == pytest.approx(float(expected))


# --- The attack: eval_robustness.py ---------------------------------------------------------------------------------

def test_code_preset_is_eval_robustness():
    code = ATTACK_PRESETS["code"]
    assert code.budget == 0.1  # eval_robustness.py:79 --B 0.1 (no --B in the scripts: DELTA.sh:16 etc.)
    assert code.step == 0.01  # eval_robustness.py:119 eps_iter=0.01
    assert code.iters == 40  # eval_robustness.py:81 --pgd_iter 40
    assert code.magnitude == 1000.0  # eval_robustness.py:80 --m 1000
    assert code.target_index == 0  # eval_robustness.py:52 y[:, 0] = args.m
    assert code.loss == "code"  # eval_robustness.py:89-90 myloss
    assert code.units == "normalized"  # eval_robustness.py:93-105: PGD on the normalised test tensors


def test_paper_preset_is_the_papers_text():
    paper = ATTACK_PRESETS["paper"]
    # Sec. 5.1: B = 0.4, 40 PGD iterations, m = 1000, learning rate 0.01, target one-hot in the first neuron;
    # Eq. 1: ||f_K(x + delta) - t||^2 with pixels in [0, 1].
    assert (paper.budget, paper.step, paper.iters, paper.magnitude, paper.target_index) == (0.4, 0.01, 40, 1000.0, 0)
    assert (paper.loss, paper.units) == ("target_l2", "pixels")


def test_code_loss_is_myloss():
    features = torch.tensor([[3.0, 1.0, -2.0, 0.5], [1000.0, 0.0, 0.0, 0.0]])
    # eval_robustness.py:90: (f_0 - m)^2 + 0.1 * mean_{j >= 1} (f_j - 0)^2 per image (their sign: maximised).
    expected = [(3.0 - 1000.0) ** 2 + 0.1 * (1.0 + 4.0 + 0.25) / 3, 0.0]
    assert feature_objective(features, ATTACK_PRESETS["code"]).tolist() == pytest.approx(expected)


def test_asr_is_over_the_correctly_classified_test_images():
    labels = torch.tensor([0, 1, 2, 3, 4])
    clean = torch.tensor([0, 1, 2, 9, 9])  # three correct
    adversarial = torch.tensor([0, 9, 9, 3, 9])  # two of the three fooled; a clean-wrong one "fixed"
    counts = attack_counts(labels, clean, adversarial)
    # eval_robustness.py:60-62, 69: (adv_trial - adv_success) / adv_trial, adv_trial = clean-correct images
    assert (counts.clean_correct, counts.fooled) == (3, 2)
    assert counts.asr == pytest.approx(100.0 * 2 / 3)
    assert math.isclose(counts.clean_acc, 60.0)


# --- The recipes ---------------------------------------------------------------------------------------------------

def _spaces(recipe):
    """A recipe's parts as search spaces (a part is a SearchSpace, or wraps one as `.space`)."""
    return [getattr(part, "space", part) for part in recipe.parts]


def test_recipes_score_with_the_code_preset_and_one_seed():
    from tuner import recipes

    assert recipes.RECIPE_ATTACK_PRESET == "code"  # the published tables came from eval_robustness.py
    assert recipes.SEEDS == (0,)  # the scripts run each setting once (i=1: DELTA.sh:4, Renofeation.sh:4)
    assert tuple(DATASETS) == ("dog", "bird", "action", "indoor", "flower")  # the tables' column order
    assert recipes.ARCHS == ("resnet18", "resnet50", "resnet101", "mobilenet_v2")  # Table 4


# The only values a recipe may set beside method / dataset / seed: everything else is the method's defaults above.
RECIPE_KEYS = {"method", "dataset", "seed", "arch", "fraction", "dropout", "swa", "lambda_feat", "val_fraction",
               "lr", "momentum", "weight_decay"}
SCHEDULE_KEYS = {"iters", "batch_size", "dropout_p", "swa_iters", "swa_every", "head_beta", "adv_steps", "adv_eps"}


@pytest.mark.parametrize("name", ("table2", "table4", "table5", "table6", "fig3", "fig4"))
def test_recipes_keep_the_pinned_schedules(name):
    from tuner.recipes import RECIPES

    for space in _spaces(RECIPES[name]):
        keys = set(space.parameters) | set(space.fixed)
        assert keys <= RECIPE_KEYS, keys - RECIPE_KEYS
        assert not keys & SCHEDULE_KEYS
        assert space.fixed.get("arch", "resnet18") == "resnet18" or "arch" in space.parameters
        if "lr" in space.parameters:  # a tuned part: the paper's grid (Sec. 5.1), baselines only
            assert set(space.methods) <= {"linear", "finetune", "l2sp"}


def test_table5_fractions_and_table6_switches():
    from tuner.recipes import RECIPES

    fractions = {f for space in _spaces(RECIPES["table5"])
                 for f in space.parameters.get("fraction", {}).get("grid", [])}
    assert fractions == {0.33, 0.66}  # paper Sec. 5.4 / Table 5: 33 % and 66 % of each class
    switched = [space for space in _spaces(RECIPES["table6"]) if space.fixed.get("swa")]
    # Table 6 "DELTA ADV. TRAINED + SWA + DO"
    assert [(s.methods, s.fixed["dropout"]) for s in switched] == [(("delta_adv",), True)]


# --- issue 21: the recipes' protocol and the details that follow the authors' code -------------------------------


def test_the_code_preset_clips_to_the_authors_normalised_box():
    code = ATTACK_PRESETS["code"]
    assert (code.box, code.box_min, code.box_max) == ("normalized", -2.2, 2.2)  # eval_robustness.py:119
    assert all((ATTACK_PRESETS[name].box, ATTACK_PRESETS[name].box_min, ATTACK_PRESETS[name].box_max)
               == ("pixels", 0.0, 1.0) for name in ("paper", "embedded", "digits"))  # the paper's [0, 1] images


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_the_head_is_decayed_and_penalised_on_weight_and_bias(dataset):
    config = paper_config("finetune", dataset)
    assert config.head_weight_decay  # train.py:155: SGD(model.parameters()), the fc included
    assert config.head_penalty_bias and config.head_beta == 0.01  # train.py:77-83 linear_l2, weight and bias


def test_swa_runs_at_half_the_learning_rate_from_a_fresh_optimizer():
    renofeation = paper_config("renofeation", "bird")
    assert renofeation.swa_learning_rate == 0.005  # Renofeation.sh:16 --lr 5e-3 --const_lr; Sec. 5.1 "0.005"
    assert renofeation.swa_fresh_optimizer  # Renofeation.sh:16: a second train.py run builds a new SGD
    assert paper_config("delta", "flower", swa=True).swa_learning_rate == 0.0025  # Sec. 5.1: half of lr 5e-3


def test_delta_attention_constants_are_deltas_own():
    from trainables import delta_attention as att
    from trainables.methods import DELTA_ATT_PER_DATASET
    assert (att.PROBE_EPOCHS, att.PROBE_LR, att.PROBE_MOMENTUM, att.PROBE_WEIGHT_DECAY) == (10, 0.01, 0.9, 1e-4)
    assert att.PROBE_BATCH_SIZE == 32  # DELTA/run.sh:7
    assert att.RISE_BATCHES == 4 and att.ATTENTION_TEMPERATURE == 5.0  # channel_eval.py:179-180, train.py:115
    # alpha: train.py:34 default 0.01, run.sh:15-18 0.1 on Stanford Dogs
    assert {d: v["lambda_feat"] for d, v in DELTA_ATT_PER_DATASET.items()} == {
        "flower": 0.01, "indoor": 0.01, "action": 0.01, "bird": 0.01, "dog": 0.1}


def test_fixed_recipe_parts_train_on_the_whole_official_split_and_table2_tunes_on_the_paper_grid():
    from tuner.recipes import PAPER_GRID, RECIPES
    for recipe in RECIPES.values():
        for part in recipe.parts:
            # train.py:339-344: the whole training split trains (Flowers: trnid + valid, Table 3)
            assert part.refit or part.space.fixed["val_fraction"] == 0.0, part.name
    tuned = [part for recipe in RECIPES.values() for part in recipe.parts if part.refit]
    assert [part.name for part in tuned] == ["table2_tuned"]
    assert set(tuned[0].space.methods) == {"linear", "finetune", "l2sp"}  # Sec. 5.1 tunes the fine-tuning family
    assert PAPER_GRID == {"lr": [0.01, 0.005], "momentum": [0.0, 0.9], "weight_decay": [0.0, 1e-4]}  # Sec. 5.1
