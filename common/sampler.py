"""A shuffling sampler that is split over ranks and can restart in the middle of an epoch."""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Epoch-seeded permutation of the dataset, split over `num_replicas` ranks.

    The permutation depends only on (seed, epoch), never on the number of ranks, and a position
    is counted in samples of the global order. So a run stopped after `consumed` samples resumes
    on any number of processes by skipping exactly those samples: no example is seen twice or
    skipped, which is what lets a checkpoint written on N processes continue on M.

    With ``lengths`` and ``sort_pool`` > 0 each run of ``sort_pool`` shuffled positions is sorted by
    length (ascending or descending, drawn per run) before the order is cut into batches: a batch
    then holds items of similar length, so less of it is padding. The pools are counted in samples,
    not batches, so the order still does not depend on the number of ranks.

    With ``drop_last`` (training) every rank takes the same number of whole batches, as DDP needs.
    Without it (validation) every sample is taken exactly once, round robin over the ranks, whose
    shares then differ by up to one sample: a sample repeated to even them out would count twice in a
    mean over the set.
    """

    def __init__(self, n_samples: int, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True, batch_size: int = 1, drop_last: bool = True,
                 lengths: list[int] | None = None, sort_pool: int = 0):
        if sort_pool and (lengths is None or len(lengths) != n_samples):
            raise ValueError(f"sort_pool={sort_pool} needs one length per sample ({n_samples})")
        self.lengths = lengths
        self.sort_pool = sort_pool
        self.n_samples = n_samples
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.epoch = 0
        self.consumed = 0

    def set_epoch(self, epoch: int, consumed: int = 0) -> None:
        """Select the epoch's permutation; `consumed` global samples of it are skipped."""
        self.epoch = epoch
        self.consumed = consumed

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n_samples))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n_samples, generator=generator).tolist()
        if not self.sort_pool:
            return order
        pools = [order[start:start + self.sort_pool] for start in range(0, len(order), self.sort_pool)]
        descending = torch.randint(2, (len(pools),), generator=generator).tolist()
        return [index for pool, down in zip(pools, descending)
                for index in sorted(pool, key=self.lengths.__getitem__, reverse=bool(down))]

    def _indices(self) -> list[int]:
        remaining = self._order()[self.consumed:]
        if self.drop_last:
            global_batch = self.batch_size * self.num_replicas
            remaining = remaining[:len(remaining) // global_batch * global_batch]
        return remaining[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())

    def batches_per_epoch(self) -> int:
        """Batches in a whole epoch (from its start): every rank's with drop_last, else rank 0's (the most)."""
        global_batch = self.batch_size * self.num_replicas
        if self.drop_last:
            return self.n_samples // global_batch
        return math.ceil(math.ceil(self.n_samples / self.num_replicas) / self.batch_size)
