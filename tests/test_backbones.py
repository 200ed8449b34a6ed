"""Backbones, their feature taps, and where pretrained weights come from (never the network)."""
import pytest
import torch

from trainables.config import resolve_config
from trainables.errors import UserError
from trainables.models.backbones import build_body
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


def test_missing_imagenet_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as raised:
        imagenet_pretrained("resnet18")
    message = str(raised.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
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


def test_unknown_arch_is_a_user_error():
    with pytest.raises(UserError, match="unknown arch 'vgg11'"):
        build_body("vgg11", 10)
