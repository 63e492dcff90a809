"""PyTorch integration: datasets that render or read fergen samples, and a batched torch renderer.

- :class:`RenderDataset`: map-style, renders sample ``i`` of an epoch on demand;
- :class:`ShardDataset`: iterable, streams and decodes fergen shards;
- :class:`BatchRenderer`: renders whole batches with torch on a CPU or CUDA device;
- :func:`collate`: batches the sample dicts of both datasets.

Importing this package imports torch; ``import fergen`` alone does not.
"""

from .batch_renderer import BatchRenderer, ParamBatch, RenderInputs, gather_inputs
from .render_dataset import RenderDataset, split_indices
from .samples import SAMPLE_KEYS, collate
from .shard_dataset import ShardDataset, decode_sample, expand_urls

__all__ = [
    "BatchRenderer",
    "ParamBatch",
    "RenderDataset",
    "RenderInputs",
    "SAMPLE_KEYS",
    "ShardDataset",
    "collate",
    "decode_sample",
    "expand_urls",
    "gather_inputs",
    "split_indices",
]
