"""Tacotron 2 training loss: mel MSE before and after the postnet plus the stop-token BCE."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Tacotron2Loss(nn.Module):
    """`loss_fn(outputs, targets) -> (loss, terms)`.

    outputs = (mel_outputs, mel_outputs_postnet, gate_outputs, alignments) from `Tacotron2.forward`;
    targets = (mel_padded, gate_padded, input_lengths, output_lengths) from `batch_to_device`.
    As in the recipe every term is a mean over all padded positions (padding included), in float32
    whatever the autocast dtype.
    """

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
        return {"mel_loss": mel_loss, "gate_loss": gate_loss}

    def forward(self, outputs: tuple, targets: tuple) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.terms(outputs, targets)
        loss = torch.stack(list(terms.values())).sum()
        return loss, {name: value.detach() for name, value in terms.items()}
