"""A small synthetic dataset that follows the fergen batch contract, and tiny configs."""

import torch
from torch.utils.data import Dataset

from fergen_train.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RuntimeConfig, TrainConfig


class SquaresDataset(Dataset):
    """Class k is a bright square in corner k of a noisy image.

    The target is the square alone on black, like fergen's face-only target.
    Sample i of epoch e is fixed by (seed, epoch, i), so workers and reruns
    see identical pixels.
    """

    def __init__(self, length=48, size=32, num_classes=4, seed=0):
        self.length = length
        self.size = size
        self.num_classes = num_classes
        self.seed = seed
        self.epoch = 0
        self.class_names = [f"corner{k}" for k in range(num_classes)]

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + index)
        label = index % self.num_classes
        side = self.size // 2
        top = (label // 2) * side
        left = (label % 2) * side
        mask = torch.zeros(1, self.size, self.size)
        mask[:, top : top + side, left : left + side] = 1.0
        colour = 0.6 + 0.4 * torch.rand(3, 1, 1, generator=generator)
        background = 0.5 * torch.rand(3, self.size, self.size, generator=generator)
        target = colour * mask
        composite = mask * colour + (1 - mask) * background
        return {
            "composite": composite.float(),
            "target": target.float(),
            "mask": mask,
            "label": torch.tensor(label, dtype=torch.int64),
            "theta": torch.eye(2, 3),
            "meta": {"index": index},
        }


TINY_MODEL = ModelConfig(
    variant="feratt-rep-cls",
    input_size=(32, 32),
    encoder="resnet18",
    encoder_width=8,
    decoder_width=4,
    feature_channels=8,
    feature_blocks=1,
    classifier_width=8,
    representation_dim=8,
)


def tiny_config(variant="feratt-rep-cls", epochs=2, batch_size=16, num_workers=0, **optim):
    return TrainConfig(
        seed=3,
        model=ModelConfig(**{**TINY_MODEL.__dict__, "variant": variant}),
        data=DataConfig(num_workers=num_workers),
        optim=OptimConfig(lr=1e-3, batch_size=batch_size, epochs=epochs, **optim),
        loss=LossConfig(class_means="running"),
        runtime=RuntimeConfig(device="cpu"),
    )
