"""Guided attention loss (Tachibana et al. 2017, "Efficiently trainable text-to-speech ...").

Text and speech advance together, so the attention of decoder step t over token n should lie near
the diagonal n/N = t/T. The penalty weights each attention value by its distance from it,

    W[t, n] = 1 - exp(-(n/N - t/T)^2 / (2 sigma^2)),

with N and T each utterance's real token and frame counts. The loss is the penalty of one decoder
step, sum over n of ``alignments[t, n] * W[t, n]``, averaged over the real decoder steps of the batch:
~0 for a diagonal alignment, about 0.6 for uniform attention whatever the text length, so a weight
of 1 puts it on the scale of the mel loss. (Averaging over all (t, n) positions instead divides it
by the token count: ~0.005 on LJSpeech sentences, too weak to steer anything.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from tacotron2.model import lengths_to_mask


def guided_attention_weights(input_lengths: Tensor, output_lengths: Tensor, n_frames: int,
                             n_tokens: int, sigma: float) -> tuple[Tensor, Tensor]:
    """``(W [B, n_frames, n_tokens] float32, real-position mask [B, n_frames, n_tokens] bool)``.

    W is 0 at padded positions.
    """
    device = input_lengths.device
    n_real_tokens = input_lengths.float().clamp(min=1).view(-1, 1, 1)
    n_real_frames = output_lengths.to(device).float().clamp(min=1).view(-1, 1, 1)
    token = torch.arange(n_tokens, device=device, dtype=torch.float32).view(1, 1, -1)
    frame = torch.arange(n_frames, device=device, dtype=torch.float32).view(1, -1, 1)
    distance = token / n_real_tokens - frame / n_real_frames
    weights = 1.0 - torch.exp(-distance.square() / (2.0 * sigma ** 2))
    mask = (lengths_to_mask(output_lengths.to(device), n_frames).unsqueeze(2)
            & lengths_to_mask(input_lengths, n_tokens).unsqueeze(1))
    return weights * mask, mask


def guided_attention_loss(alignments: Tensor, input_lengths: Tensor, output_lengths: Tensor,
                          sigma: float = 0.2) -> Tensor:
    """Per-decoder-step penalty ``sum_n alignments * W``, averaged over real steps, in float32
    (``alignments [B, T, N]``)."""
    _, n_frames, n_tokens = alignments.shape
    weights, _ = guided_attention_weights(input_lengths.to(alignments.device), output_lengths,
                                          n_frames, n_tokens, sigma)
    penalty = (alignments.float() * weights).sum()
    n_steps = output_lengths.to(alignments.device).clamp(max=n_frames).sum()
    return penalty / n_steps.clamp(min=1).float()
