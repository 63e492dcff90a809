"""FERAtt learns to tell a few faces apart from on-the-fly renders and generalises to new renders."""

import pytest
import torch

from fergen_train.checkpoint import model_from_checkpoint
from fergen_train.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RuntimeConfig, TrainConfig
from fergen_train.data import fergen_torch_available
from fergen_train.engine import evaluate, resolve_runtime
from fergen_train.trainer import fit, make_loader

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not fergen_torch_available(), reason="fergen.torch.RenderDataset is not available yet"),
]

FACES = 4
SIZE = 48
BACKGROUNDS = ["coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "cat"]


def face_recipe(seed, backgrounds):
    from fergen.recipe import recipe_from_dict

    return recipe_from_dict(
        {
            "version": 1,
            "name": f"lfw{FACES}-seed{seed}",
            "seed": seed,
            "faces": {"kind": "lfw-subset", "count": FACES, "mask": {"strategy": "ellipse"}},
            "backgrounds": {"kind": "skimage", "images": backgrounds},
            # Milder geometry than the defaults keeps the 25x25 faces recognisable at 48x48.
            "render": {
                "output_size": [SIZE, SIZE],
                "face_size": 64,
                "padding": 4,
                "rotation_range": [-15, 15],
                "translation": 0.15,
                "perspective": 0.05,
            },
        }
    )


def test_feratt_beats_chance_held_out(tmp_path):
    from fergen.torch import RenderDataset, collate

    # Another recipe seed gives new poses, background crops and photometric draws of the same faces.
    train = RenderDataset(face_recipe(0, BACKGROUNDS), length=512)
    held_out = RenderDataset(face_recipe(1, BACKGROUNDS), length=200)
    config = TrainConfig(
        seed=0,
        model=ModelConfig(
            variant="feratt-rep-cls",
            input_size=(SIZE, SIZE),
            encoder="resnet18",
            encoder_width=8,
            decoder_width=4,
            feature_channels=8,
            feature_blocks=1,
            classifier_width=16,
            representation_dim=16,
        ),
        data=DataConfig(num_workers=1),
        optim=OptimConfig(lr=2e-3, batch_size=32, epochs=6),
        loss=LossConfig(class_means="running"),
        runtime=RuntimeConfig(device="cpu"),
    )

    result = fit(config, train, train.class_names, tmp_path / "run", collate_fn=collate)

    assert held_out.class_names == train.class_names
    assert result.history[-1]["train_accuracy"] > 0.6
    payload = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    model = model_from_checkpoint(payload)
    loader = make_loader(held_out, 50, False, seed=0, epoch=0, num_workers=1, collate_fn=collate)
    evaluation = evaluate(model, None, loader, resolve_runtime(config.runtime), FACES, (SIZE, SIZE))
    # Chance is 1 / 4; 0.6 leaves room for run-to-run noise in the float sums.
    assert evaluation.stats.samples == 200
    print(f"held-out accuracy {evaluation.stats.metrics['accuracy']:.3f}")
    assert evaluation.stats.metrics["accuracy"] >= 0.6
