"""common/sampler.py: the epoch order, its split over ranks, resuming, and length-sorted pools."""
from __future__ import annotations

import pytest
import torch

from common.sampler import ResumableSampler

N = 103
LENGTHS = torch.randint(5, 200, (N,), generator=torch.Generator().manual_seed(0)).tolist()


def global_order(**kwargs) -> list[int]:
    """The order of one epoch as the ranks see it together: rank r takes every R-th position."""
    replicas = kwargs.pop("num_replicas", 1)
    per_rank = [list(ResumableSampler(N, replicas, rank, batch_size=4, **kwargs)) for rank in range(replicas)]
    return [index for step in zip(*per_rank) for index in step]


def mean_batch_max(order: list[int], batch_size: int = 8) -> float:
    batches = [order[start:start + batch_size] for start in range(0, len(order) - batch_size + 1, batch_size)]
    return sum(max(LENGTHS[i] for i in batch) for batch in batches) / len(batches)


def test_epoch_order_is_a_seeded_permutation_split_over_ranks():
    one = global_order(seed=3)
    assert len(set(one)) == len(one) == N // 4 * 4 and set(one) <= set(range(N))
    assert global_order(seed=3, num_replicas=2) == one[:N // 8 * 8]  # same order, cut for 2 x 4
    assert global_order(seed=4) != one


@pytest.mark.parametrize("pool", [16, 40])
def test_sorted_pools_keep_a_permutation_with_monotonic_runs(pool):
    sampler = ResumableSampler(N, seed=1, lengths=LENGTHS, sort_pool=pool, drop_last=False)
    order = list(sampler)
    assert sorted(order) == list(range(N))
    directions = set()
    for start in range(0, N, pool):
        run = [LENGTHS[i] for i in order[start:start + pool]]
        assert run == sorted(run) or run == sorted(run, reverse=True)
        directions.add(run == sorted(run))
    assert directions == {True, False}  # both directions are drawn
    random_order = list(ResumableSampler(N, seed=1, drop_last=False))
    assert set(order[:pool]) == set(random_order[:pool])  # the pools are the shuffled runs, sorted
    assert mean_batch_max(order) < 0.85 * mean_batch_max(random_order)  # less padding per batch


def test_sorted_pools_do_not_depend_on_ranks_and_resume_by_position():
    kwargs = {"seed": 2, "lengths": LENGTHS, "sort_pool": 24}
    one = global_order(**kwargs)
    assert global_order(num_replicas=2, **kwargs) == one[:N // 8 * 8]
    resumed = ResumableSampler(N, 2, 1, batch_size=4, **kwargs)
    resumed.set_epoch(0, consumed=16)
    assert list(resumed) == one[16:16 + (N - 16) // 8 * 8][1::2]
    later = ResumableSampler(N, batch_size=4, **kwargs)
    later.set_epoch(1)
    assert list(later) != one


def test_sorted_pools_need_a_length_per_item():
    with pytest.raises(ValueError, match="one length per sample"):
        ResumableSampler(N, lengths=LENGTHS[:-1], sort_pool=8)


@pytest.mark.parametrize("n_samples, replicas", [(N, 1), (N, 2), (N, 3), (1, 4), (3, 4)])
def test_without_drop_last_every_sample_is_taken_once(n_samples, replicas):
    """Validation's sampler: the ranks' shares together are the whole set, round robin, nothing
    repeated (a repeat would count twice in val_loss), shares differing by at most one (a rank may
    have none), and batches_per_epoch the most batches any rank's loader gives."""
    samplers = [ResumableSampler(n_samples, replicas, rank, shuffle=False, batch_size=4, drop_last=False)
                for rank in range(replicas)]
    shares = [list(sampler) for sampler in samplers]
    assert sorted(index for share in shares for index in share) == list(range(n_samples))
    assert all(share == list(range(rank, n_samples, replicas)) for rank, share in enumerate(shares))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    n_batches = [len(list(torch.utils.data.DataLoader(range(n_samples), batch_size=4, sampler=sampler)))
                 for sampler in samplers]
    assert samplers[0].batches_per_epoch() == max(n_batches)
