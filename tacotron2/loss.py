"""Tacotron 2 training loss: mel MSE before and after the postnet, the stop-token BCE and an
optional guided-attention term."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tacotron2.guided_attention import guided_attention_loss


class Tacotron2Loss(nn.Module):
    """`loss_fn(outputs, targets) -> (loss, terms)`.

    outputs = (mel_outputs, mel_outputs_postnet, gate_outputs, alignments) from `Tacotron2.forward`;
    targets = (mel_padded, gate_padded, input_lengths, output_lengths) from `batch_to_device`.
    As in the recipe every term is a mean over all padded positions (padding included), in float32
    whatever the autocast dtype.

    With ``guided_attn_weight > 0`` a guided-attention term (``guided_attention.py``, over real
    positions only) is added as ``guided_attn_loss``; it is then also listed in ``logged_terms``,
    the terms train.py writes to the JSON log. Plain numbers only: nothing to pickle or configure.
    """

    def __init__(self, guided_attn_weight: float = 0.0, guided_attn_sigma: float = 0.2):
        super().__init__()
        if guided_attn_weight < 0 or guided_attn_sigma <= 0:
            raise ValueError(f"guided attention needs weight >= 0 and sigma > 0, got "
                             f"{guided_attn_weight} and {guided_attn_sigma}")
        self.guided_attn_weight = guided_attn_weight
        self.guided_attn_sigma = guided_attn_sigma
        self.logged_terms: tuple[str, ...] = ("guided_attn_loss",) if guided_attn_weight > 0 else ()

    def terms(self, outputs: tuple, targets: tuple) -> dict[str, Tensor]:
        """Named loss terms; their sum is the loss.

        Terms that need attention or lengths (e.g. a guided-attention penalty) belong here: the
        alignments are outputs[3] and the input/output lengths are targets[2] and targets[3].
        """
        mel_outputs, mel_outputs_postnet, gate_outputs = outputs[:3]
        mel_target, gate_target = targets[0].float(), targets[1].float()
        mel_loss = (F.mse_loss(mel_outputs.float(), mel_target)
                    + F.mse_loss(mel_outputs_postnet.float(), mel_target))
        gate_loss = F.binary_cross_entropy_with_logits(gate_outputs.float(), gate_target)
        terms = {"mel_loss": mel_loss, "gate_loss": gate_loss}
        if self.guided_attn_weight > 0:
            alignments, input_lengths, output_lengths = outputs[3], targets[2], targets[3]
            terms["guided_attn_loss"] = self.guided_attn_weight * guided_attention_loss(
                alignments, input_lengths, output_lengths, self.guided_attn_sigma)
        return terms

    def forward(self, outputs: tuple, targets: tuple) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.terms(outputs, targets)
        loss = torch.stack(list(terms.values())).sum()
        return loss, {name: value.detach() for name, value in terms.items()}
