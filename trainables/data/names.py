"""Every dataset's name, importable without torch (every command lists them in its --help)."""

# `synthetic` is the embedded source task the project pretrains its stand-in "public model" on; `novel_shapes`
# (the embedded default target) and `digits` are transferred to.
EMBEDDED_DATASETS = ("novel_shapes", "digits", "synthetic")
PAPER_DATASETS = ("dog", "bird", "action", "indoor", "flower")
# The user's own images in torchvision's ImageFolder layout: DATA_ROOT/{train,test}/<class>/<image>.
IMAGE_FOLDER = "imagefolder"
DATASET_NAMES = EMBEDDED_DATASETS + PAPER_DATASETS + (IMAGE_FOLDER,)
# The share of each class's training images held out as the validation split, unless a trial says otherwise.
DEFAULT_VAL_FRACTION = 0.1
