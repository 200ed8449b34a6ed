"""The hyper-parameters people sweep, once: how progress lines and report labels abbreviate them, and how a
trade-off figure draws them."""
from dataclasses import dataclass


@dataclass(frozen=True)
class HyperParameter:
    short: str  # in progress lines and configuration labels
    axis: str | None = None  # x-axis label of its trade-off figure; None: no such figure
    log_scale: bool = False  # swept over decades


HYPER_PARAMETERS: dict[str, HyperParameter] = {  # the order progress lines and labels follow
    "method": HyperParameter("method"),
    "lambda_feat": HyperParameter("λ_feat", "λ_feat (feature-distillation weight)", log_scale=True),
    "lambda_l2sp": HyperParameter("λ_l2sp", "λ_l2sp (L2-SP weight)", log_scale=True),
    "lr": HyperParameter("lr", "learning rate", log_scale=True),
    "momentum": HyperParameter("mom"),
    "weight_decay": HyperParameter("wd", "weight decay", log_scale=True),
    "dropout": HyperParameter("DO"),
    "swa": HyperParameter("SWA"),
    "dropout_p": HyperParameter("p_drop", "spatial-dropout rate p"),
    "swa_every": HyperParameter("swa_every", "SWA averaging interval (iterations)"),
    "fraction": HyperParameter("frac", "fraction of the training data"),
    "batch_size": HyperParameter("bs"),
    "seed": HyperParameter("seed"),
}
TRADEOFF_PARAMETERS = tuple(name for name, parameter in HYPER_PARAMETERS.items() if parameter.axis)


def short_name(key: str) -> str:
    return HYPER_PARAMETERS[key].short if key in HYPER_PARAMETERS else key
