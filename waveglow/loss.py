"""WaveGlow training loss: negative log-likelihood per audio sample (reference-dle d.1)."""

from __future__ import annotations

import torch
from torch import nn


class WaveGlowLoss(nn.Module):
    """``(sum z^2 / (2 sigma^2) - sum log_s - sum log_det_W) / (B * n_group * T')``, in float32.

    Without the Gaussian's constant, so a trained model reports negative values (-5.7 .. -6.1).
    """

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        self.sigma = sigma

    def forward(self, model_output: tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]],
                targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``targets`` (the clean audio) is unused, as in the recipe; terms are per-sample means."""
        z, log_s_list, log_det_w_list = model_output
        z = z.float()
        with torch.autocast(device_type=z.device.type, enabled=False):
            z_term = (z * z).sum() / (2 * self.sigma ** 2)
            log_s_total = torch.stack([log_s.float().sum() for log_s in log_s_list]).sum()
            log_det_w_total = torch.stack([d.float() for d in log_det_w_list]).sum()
            n_elements = z.numel()
            loss = (z_term - log_s_total - log_det_w_total) / n_elements
        terms = {"z_term": (z_term / n_elements).detach(),
                 "log_s": (log_s_total / n_elements).detach(),
                 "log_det_W": (log_det_w_total / n_elements).detach()}
        return loss, terms
