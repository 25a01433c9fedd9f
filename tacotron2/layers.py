"""Linear and 1-D convolution layers with the recipe's Xavier-uniform initialisation.

The wrapped module sits under a fixed attribute (`linear_layer`, `conv`) because NVIDIA's
checkpoints name their parameters `...linear_layer.weight` and `...conv.weight`.
"""
from torch import Tensor, nn


class LinearNorm(nn.Module):
    """`nn.Linear` whose weight is Xavier-uniform with the gain of the following nonlinearity."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, w_init_gain: str = "linear"):
        super().__init__()
        self.linear_layer = nn.Linear(in_dim, out_dim, bias=bias)
        nn.init.xavier_uniform_(self.linear_layer.weight, gain=nn.init.calculate_gain(w_init_gain))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_layer(x)


class ConvNorm(nn.Module):
    """`nn.Conv1d` with "same" padding by default and Xavier-uniform weights."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = True,
        w_init_gain: str = "linear",
    ):
        super().__init__()
        if padding is None:
            if kernel_size % 2 != 1:
                raise ValueError(f"ConvNorm: 'same' padding needs an odd kernel size, got {kernel_size}")
            padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size=kernel_size, stride=stride,
            padding=padding, dilation=dilation, bias=bias,
        )
        nn.init.xavier_uniform_(self.conv.weight, gain=nn.init.calculate_gain(w_init_gain))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)
