"""Backbones, their feature taps, and where pretrained weights come from (never the network)."""
import re
import subprocess
import sys

import pytest
import torch
from torchvision import models

from trainables.config import resolve_config
from trainables.errors import UserError
from trainables.models.backbones import build_body, build_skeleton
from trainables.models.layout import MOBILENET_V2_STAGES, RESNET_STAGES
from trainables.models.network import build_network
from trainables.models.weights import file_pretrained, imagenet_pretrained, torchvision_cache_file
from trainables.trial import pretrained_for

TAP_CHANNELS = {
    "resnet18": ([64, 128, 256, 512], 512),
    "resnet50": ([256, 512, 1024, 2048], 2048),
    "resnet101": ([256, 512, 1024, 2048], 2048),
    "mobilenet_v2": ([24, 32, 64, 160, 1280], 1280),
    "resnet18_w8": ([8, 16, 32, 64], 64),
}

# Torchvision models without a known layout, distilled at the modules `taps` names: arch -> (taps, channels of
# each tapped output, its side at 64 px input, penultimate width). The head is the last nn.Linear.
CUSTOM_TAPS = {
    "mobilenet_v3_small": ("features.1,features.3,features.8", [16, 24, 48], [16, 8, 4], 1024),
    "densenet121": ("features.denseblock1,features.denseblock2", [256, 512], [16, 8], 1024),
}


@pytest.mark.parametrize("arch", sorted(TAP_CHANNELS))
def test_taps_give_every_distilled_stage_and_the_penultimate_features(arch):
    stage_channels, penultimate_dim = TAP_CHANNELS[arch]
    network = build_network(arch, num_classes=7).eval()
    pixels = torch.rand(2, 3, 64, 64)
    logits, stages, penultimate = network.forward_features(pixels)
    assert logits.shape == (2, 7)
    assert [s.shape[1] for s in stages] == stage_channels
    assert [s.shape[-1] for s in stages] == sorted((s.shape[-1] for s in stages), reverse=True)
    assert penultimate.shape == (2, penultimate_dim)
    assert torch.allclose(network.head(penultimate), logits, atol=1e-5)
    assert torch.equal(network(pixels), logits)


def test_normalisation_lives_inside_the_model():
    network = build_network("resnet18_w8", num_classes=3).eval()
    pixels = torch.rand(2, 3, 32, 32)
    assert torch.allclose(network(pixels), network.body((pixels - network.mean) / network.std))


@pytest.mark.parametrize("arch, file_name", [("resnet18", "resnet18-f37072fd.pth"),
                                             ("efficientnet_b0", "efficientnet_b0_rwightman-7f5810bc.pth")])
def test_missing_imagenet_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch, arch, file_name):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as raised:
        imagenet_pretrained(arch)
    message = str(raised.value)
    assert file_name in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "\n" not in message


def test_imagenet_weights_come_from_the_torchvision_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    body, _ = build_body("resnet18", num_classes=1000)
    path = torchvision_cache_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(body.state_dict(), path)
    pretrained = imagenet_pretrained("resnet18")
    network = build_network("resnet18", num_classes=5, pretrained=pretrained)
    assert torch.equal(network.body.layer3[1].conv2.weight, body.layer3[1].conv2.weight)
    assert network.head.out_features == 5
    assert pretrained.origin.startswith("imagenet:")


def test_weights_file_is_used_and_wrong_files_are_one_line_errors(tmp_path):
    source, _ = build_body("resnet18_w8", num_classes=20)
    good = tmp_path / "source.pth"
    torch.save(source.state_dict(), good)
    config = resolve_config({"method": "finetune", "arch": "resnet18_w8", "weights": str(good)})
    network = build_network("resnet18_w8", 10, pretrained_for(config))
    assert torch.equal(network.body.conv1.weight, source.conv1.weight)

    other, _ = build_body("resnet18_w16", num_classes=20)
    mismatched = tmp_path / "other.pth"
    torch.save(other.state_dict(), mismatched)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:1000])
    for path in (mismatched, truncated, tmp_path / "absent.pth"):
        with pytest.raises(UserError) as raised:
            build_network("resnet18_w8", 10, file_pretrained(path))
        assert str(path.name) in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("arch", sorted(CUSTOM_TAPS))
def test_any_torchvision_arch_distils_at_the_modules_taps_names(arch):
    taps, channels, sides, penultimate_dim = CUSTOM_TAPS[arch]
    network = build_network(arch, num_classes=5, taps=taps).eval()
    logits, stages, penultimate = network.forward_features(torch.rand(2, 3, 64, 64))
    assert network.layout.stages == tuple(taps.split(","))
    assert logits.shape == (2, 5) and network.head.out_features == 5
    assert [tuple(s.shape) for s in stages] == [(2, c, side, side) for c, side in zip(channels, sides)]
    assert penultimate.shape == (2, penultimate_dim)
    assert torch.allclose(network.head(penultimate), logits, atol=1e-5)
    network.enable_spatial_dropout(0.5)
    assert len(network.train().forward_features(torch.rand(2, 3, 64, 64))[1]) == len(channels)


def test_the_known_layouts_stay_the_defaults():
    for arch in ("resnet18_w8", "resnet34", "wide_resnet50_2"):
        assert build_skeleton(arch, 3)[1].stages == RESNET_STAGES
    assert build_skeleton("mobilenet_v2", 3)[1].stages == MOBILENET_V2_STAGES
    assert build_skeleton("resnet34", 3, taps="layer2, layer3")[1].stages == ("layer2", "layer3")
    assert build_skeleton("regnet_x_400mf", 3, taps="trunk_output.block2")[1].head == "fc"  # built for real


def one_line_config_error(**values) -> str:
    with pytest.raises(UserError) as raised:
        resolve_config({"method": "delta", **values})
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_bad_archs_and_taps_are_one_line_errors():
    unknown = one_line_config_error(arch="resnet180")
    assert "unknown arch 'resnet180'" in unknown and "resnet18" in unknown and "list_models" in unknown
    assert "convnext_tiny" not in unknown  # says how to list the names rather than listing them
    assert "'features.99'" in one_line_config_error(arch="mobilenet_v3_small", taps="features.1,features.99")
    assert "features.9" in one_line_config_error(arch="mobilenet_v3_small", taps="features.99")
    assert "--set taps=" in one_line_config_error(arch="efficientnet_b0")
    assert "nn.Linear" in one_line_config_error(arch="squeezenet1_0", taps="features.3")
    assert "not supported" in one_line_config_error(arch="googlenet")
    assert "twice" in one_line_config_error(arch="resnet18_w8", taps="layer1,layer1")


def test_checking_an_arch_name_imports_no_torch_until_called():
    code = ("import sys; from trainables.models.archs import check_arch; assert 'torch' not in sys.modules; "
            "check_arch('vgg11_bn')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_weights_for_another_arch_name_the_first_mismatching_tensor_and_both_shapes(tmp_path):
    narrow = tmp_path / "w16.pth"
    torch.save(build_body("resnet18_w16", 20)[0].state_dict(), narrow)
    with pytest.raises(UserError, match=re.escape(
            "tensor 'conv1.weight' has shape [16, 3, 7, 7] in the file but [8, 3, 7, 7] in this arch")):
        build_network("resnet18_w8", 10, file_pretrained(narrow))
    large = tmp_path / "mobilenet_v3_large.pth"
    torch.save(models.mobilenet_v3_large().state_dict(), large)
    small = build_network("mobilenet_v3_small", 10, taps="features.1")
    with pytest.raises(UserError) as raised:
        build_network("mobilenet_v3_small", 10, file_pretrained(large), taps="features.1")
    message = str(raised.value)
    found = re.search(r"tensor '(.+)' has shape (\[.*\]) in the file but (\[.*\]) in this arch$", message)
    assert "\n" not in message and str(large) in message
    name, in_file, in_arch = found.groups()
    assert in_file != in_arch == str(list(small.body.state_dict()[name].shape))
