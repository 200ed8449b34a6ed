"""Mixed precision and channels_last: CUDA's defaults, the config switch, and the training step under them.

The CUDA path is exercised on the CPU by forcing its Precision (CPU autocast runs bf16 and fp16 too), so the
step's autocast, loss scaling and memory format are tested where CI runs."""
import pytest
import torch

import trainables.train as train_module
from tests.conftest import tiny_config
from trainables.config import resolve_config
from trainables.precision import Precision, precision_for
from trainables.trial import prepare_run


def test_cpu_computes_in_fp32_whatever_the_config():
    for amp in (True, False):
        precision = precision_for("cpu", amp=amp, channels_last=True)
        assert precision.dtype is None and not precision.channels_last and precision.describe() == "fp32"


def test_amp_is_on_for_paper_datasets_and_off_for_the_embedded_ones():
    paper = resolve_config({"method": "delta", "dataset": "bird", "data_root": "/data/CUB"})
    embedded = resolve_config({"method": "delta"})
    assert (paper.amp, paper.channels_last) == (True, True)
    assert (embedded.amp, embedded.channels_last) == (False, False)
    assert resolve_config({"method": "delta", "dataset": "bird", "data_root": "/d", "amp": "off"}).amp is False


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_step_under_autocast_trains_fp32_weights_in_channels_last(monkeypatch, dtype):
    forced = Precision("cpu", dtype, channels_last=True)
    monkeypatch.setattr(train_module, "precision_for", lambda *args: forced)
    run = prepare_run(resolve_config(tiny_config("renofeation", iters=4)))
    assert run.grad_scaler.is_enabled() == (dtype == torch.float16)  # fp16 scales the loss, bf16 needs not
    before = {name: p.detach().clone() for name, p in run.student.named_parameters()}
    reports = list(run.reports())
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in reports)
    for name, parameter in run.student.named_parameters():
        assert parameter.dtype == torch.float32
        if parameter.dim() == 4:
            assert parameter.is_contiguous(memory_format=torch.channels_last), name
    assert any(not torch.equal(before[name], p) for name, p in run.student.named_parameters())
    teacher = run.regularizer.teacher
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in teacher.parameters() if p.dim() == 4)
    if dtype == torch.float16:
        assert run.state_dict()["grad_scaler"]["scale"] > 0  # resumes with the scale it reached
