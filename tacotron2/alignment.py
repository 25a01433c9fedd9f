"""Alignment health: is the attention sharp, and does it walk to the end of the text?

Three numbers per validation, each returned as a ``(sum, count)`` pair so they can be summed over
batches and ranks before dividing:

- ``focus``: the mean, over real (unpadded) decoder steps of all utterances, of the largest
  attention weight at that step. A sharp alignment gives ~1; attention smeared evenly over N
  tokens gives 1/N.
- ``reached_end``: the fraction of utterances whose attention argmax lands, at some real decoder
  step, on one of the last ``END_TOKENS`` real input tokens. Two rather than one because the text
  usually ends in a punctuation mark that a good alignment may pass through in a step or two
  while the final letter keeps the argmax. Read it together with ``focus``: while attention is
  still diffuse (a fresh model) the argmax is noise and touches the end by chance.
- ``walk``: per utterance, (the fraction of real decoder steps whose attention argmax stays or moves
  forward by at most ``MAX_ADVANCE`` tokens) x (the fraction of real tokens the argmax visits),
  averaged over utterances. It is ~1 only for attention that walks the text token by token: noise
  jumps about (few forward steps), attention stuck on a few tokens visits few of them. Unlike
  ``focus`` it does not care how sharp the peak is: a diagonal a few tokens wide, which the decoder
  can already use, scores high, while its focus can be as low as that of a collapsed alignment.

Padded tokens are excluded before the max/argmax, so the numbers do not depend on batch padding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tacotron2.model import lengths_to_mask

END_TOKENS = 2
MAX_ADVANCE = 3  # tokens per decoder step: ~5 frames a token, with spaces and punctuation passed quickly


def _masked(alignments: Tensor, input_lengths: Tensor, output_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """float32 alignments with padded tokens set to -1 (below any weight) and the real-step mask [B, T]."""
    _, n_frames, n_tokens = alignments.shape
    token_mask = lengths_to_mask(input_lengths.to(alignments.device), n_tokens)  # [B, N]
    weights = alignments.detach().float().masked_fill(~token_mask.unsqueeze(1), -1.0)
    step_mask = lengths_to_mask(output_lengths.to(alignments.device), n_frames)  # [B, T]
    return weights, step_mask


def focus(alignments: Tensor, input_lengths: Tensor, output_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum of the per-step max weight over real steps, number of real steps)``, float64."""
    weights, step_mask = _masked(alignments, input_lengths, output_lengths)
    peak = weights.max(dim=2).values.clamp(min=0.0)
    return (peak * step_mask).double().sum(), step_mask.double().sum()


def reached_end(alignments: Tensor, input_lengths: Tensor, output_lengths: Tensor,
                end_tokens: int = END_TOKENS) -> tuple[Tensor, Tensor]:
    """``(utterances whose argmax reaches the last end_tokens real tokens, utterances)``, float64."""
    weights, step_mask = _masked(alignments, input_lengths, output_lengths)
    peak_token = weights.argmax(dim=2)  # [B, T]
    first_end_token = (input_lengths.to(alignments.device) - end_tokens).clamp(min=0).unsqueeze(1)
    at_end = (peak_token >= first_end_token) & step_mask
    reached = at_end.any(dim=1)
    return reached.double().sum(), torch.tensor(float(reached.numel()), dtype=torch.float64,
                                                device=reached.device)


def walk(alignments: Tensor, input_lengths: Tensor, output_lengths: Tensor,
         max_advance: int = MAX_ADVANCE) -> tuple[Tensor, Tensor]:
    """``(sum over utterances of forward-step fraction x visited-token fraction, utterances)``, float64;
    utterances without a real decoder step or input token are left out."""
    weights, step_mask = _masked(alignments, input_lengths, output_lengths)
    batch, _, n_tokens = alignments.shape
    path = weights.argmax(dim=2)  # [B, T]
    moves = path[:, 1:] - path[:, :-1]
    pairs = step_mask[:, 1:]  # both steps real: the real steps are a prefix
    n_pairs = pairs.double().sum(1)
    forward = ((moves >= 0) & (moves <= max_advance) & pairs).double().sum(1) / n_pairs.clamp(min=1)
    forward = torch.where(n_pairs > 0, forward, 1.0)  # a single step cannot go wrong
    # padded steps all point at one extra column, which is dropped before counting
    path = path.masked_fill(~step_mask, n_tokens)
    visited = torch.zeros(batch, n_tokens + 1, dtype=torch.float64, device=path.device).scatter_(1, path, 1.0)
    real_tokens = input_lengths.to(path.device).double()
    coverage = visited[:, :n_tokens].sum(1) / real_tokens.clamp(min=1)
    counted = step_mask.any(dim=1) & (real_tokens > 0)  # as focus: no real step or token, no say
    return (forward * coverage)[counted].sum(), counted.double().sum()


def alignment_stats(alignments: Tensor, input_lengths: Tensor, output_lengths: Tensor
                    ) -> dict[str, tuple[Tensor, Tensor]]:
    """``{'focus', 'reached_end', 'walk'}: (sum, count)`` for one batch ``[B, T, N]``."""
    return {"focus": focus(alignments, input_lengths, output_lengths),
            "reached_end": reached_end(alignments, input_lengths, output_lengths),
            "walk": walk(alignments, input_lengths, output_lengths)}
