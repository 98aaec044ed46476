"""Whole-batch loader over in-memory tensors.

Hand-written because ``torch.utils.data.DataLoader`` indexes and collates sample by sample,
which costs more than these tiny models' forward and backward passes (see ``bench/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from stiffml.data.samples import SampleSet


class BatchLoader:
    """Yields batches of a :class:`SampleSet` by tensor indexing.

    Under DDP each rank takes every ``world_size``-th index of the (shuffled) order; for training
    ``equal_shards`` cuts the order so all ranks run the same number of steps.

    Args:
        samples: The sample set (tensors already on the training device).
        indices: Sample indices this loader serves (1-D long tensor on the same device).
        batch_size: Samples per batch.
        shuffle: Reshuffle every epoch (seeded by ``seed`` and the epoch number).
        drop_last: Drop a final short batch.
        equal_shards: Under DDP, cut the order to a multiple of ``world_size`` so every rank runs
            the same number of steps (needed for training; evaluation keeps every sample).
        seed: Base seed of the shuffling.
        rank: This process's rank.
        world_size: Number of processes.
        epoch_fn: Returns the current epoch (for the shuffle seed); defaults to a local counter.
        progress_fn: Returns how many batches of the current epoch were trained on; saved by
            :meth:`state_dict` so that a run resumed from a mid-epoch checkpoint continues with
            the next batch of the same order (Lightning calls ``state_dict``/``load_state_dict``
            of loaders that have them). Defaults to the batches this loader has yielded.
    """

    def __init__(
        self,
        samples: SampleSet,
        indices: Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        equal_shards: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn: Callable[[], int] | None = None,
        progress_fn: Callable[[], int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.samples = samples
        self.indices = indices.to(samples.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch_fn = epoch_fn
        self.equal_shards = equal_shards
        self.progress_fn = progress_fn
        self._epochs = 0
        self._epoch_of_order: int | None = None
        self._yielded = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip)

    def _per_rank(self) -> int:
        n = len(self.indices)
        if self.world_size == 1:
            return n
        if self.equal_shards:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def _batch(self) -> int:
        # a batch larger than the data is one full batch (not zero batches under drop_last)
        return max(1, min(self.batch_size, self._per_rank()))

    def __len__(self) -> int:
        n, bs = self._per_rank(), self._batch()
        return n // bs if self.drop_last else -(-n // bs)

    def _epoch(self) -> int:
        return self.epoch_fn() if self.epoch_fn is not None else self._epochs

    def _order(self, epoch: int) -> Tensor:
        idx = self.indices
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            idx = idx[torch.randperm(len(idx), generator=gen).to(idx.device)]
        if self.world_size > 1:
            stop = (len(idx) // self.world_size) * self.world_size if self.equal_shards else len(idx)
            idx = idx[self.rank : stop : self.world_size]
        return idx

    def __iter__(self) -> Iterator[Any]:
        epoch = self._epoch()
        idx = self._order(epoch)
        self._epochs += 1
        self._epoch_of_order, self._yielded = epoch, 0
        skip = 0
        if self._resume is not None:
            resume_epoch, done = self._resume
            self._resume = None
            if resume_epoch == epoch:
                skip = done
        bs = self._batch()
        for i in range(skip, len(self)):
            self._yielded = i + 1
            yield self.samples.batch(idx[i * bs : (i + 1) * bs])

    def state_dict(self) -> dict[str, int]:
        """The epoch whose order is being served and how many of its batches were trained on."""
        done = self.progress_fn() if self.progress_fn is not None else self._yielded
        return {"epoch": self._epoch_of_order if self._epoch_of_order is not None else self._epoch(), "done": int(done)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next iteration skip the batches of ``state['epoch']`` already trained on.

        Only a training loader (one with ``progress_fn``) resumes part-way; an evaluation loader
        always serves every batch."""
        if self.progress_fn is not None:
            self._resume = (int(state["epoch"]), int(state["done"]))
