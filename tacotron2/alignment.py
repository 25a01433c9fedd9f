"""Alignment health: is the attention sharp, and does it walk to the end of the text?

Two numbers per validation, each returned as a ``(sum, count)`` pair so they can be summed over
batches and ranks before dividing:

- ``focus``: the mean, over real (unpadded) decoder steps of all utterances, of the largest
  attention weight at that step. A sharp alignment gives ~1; attention smeared evenly over N
  tokens gives 1/N.
- ``reached_end``: the fraction of utterances whose attention argmax lands, at some real decoder
  step, on one of the last ``END_TOKENS`` real input tokens. Two rather than one because the text
  usually ends in a punctuation mark that a good alignment may pass through in a step or two
  while the final letter keeps the argmax. Read it together with ``focus``: while attention is
  still diffuse (a fresh model) the argmax is noise and touches the end by chance.

Padded tokens are excluded before the max/argmax, so the numbers do not depend on batch padding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tacotron2.model import lengths_to_mask

END_TOKENS = 2


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


def alignment_stats(alignments: Tensor, input_lengths: Tensor, output_lengths: Tensor
                    ) -> dict[str, tuple[Tensor, Tensor]]:
    """``{'focus': (sum, count), 'reached_end': (sum, count)}`` for one batch ``[B, T, N]``."""
    return {"focus": focus(alignments, input_lengths, output_lengths),
            "reached_end": reached_end(alignments, input_lengths, output_lengths)}
