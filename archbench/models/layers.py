"""Small reference modules that no library ships in the form archbench needs."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query, key, value and output projections.

    ``fused=True`` calls ``F.scaled_dot_product_attention``, which picks a fused kernel (flash,
    memory-efficient, or the CPU flash kernel) that never holds the T×T scores;
    ``fused=False`` materialises them with an explicit matmul, softmax and matmul.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, fused: bool = True):
        super().__init__()
        self.heads = heads
        self.fused = fused
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self._split(self.q_proj(x)), self._split(self.k_proj(x)), self._split(self.v_proj(x))
        if self.fused:
            context = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout.p if self.training else 0.0)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d // self.heads)
            context = torch.matmul(self.dropout(torch.softmax(scores, dim=-1)), v)
        return self.out_proj(context.transpose(1, 2).reshape(b, t, d))


class TorchSelfAttention(nn.Module):
    """Self-attention through ``nn.MultiheadAttention`` (in eval without grad: PyTorch's fast path)."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


class EncoderLayer(nn.Module):
    """A Transformer encoder layer (ReLU feed-forward) around :class:`SelfAttention`.

    Same parameters as ``nn.TransformerEncoderLayer(d_model, heads, ff)``.
    """

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float = 0.1, norm_first: bool = False,
                 fused: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = SelfAttention(d_model, heads, dropout, fused)
        self.linear1 = nn.Linear(d_model, ff)
        self.linear2 = nn.Linear(ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.dropout(self.self_attn(self.norm1(x)))
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self.dropout(self.self_attn(x)))
        return self.norm2(x + self._ff(x))


class Encoder(nn.Module):
    """A stack of encoder layers under ``.layers`` (the attribute name ``nn.TransformerEncoder`` uses)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class InceptionModule(nn.Module):
    """GoogLeNet's Inception module; ``reduce=False`` is the paper's naive version without 1×1 reductions."""

    def __init__(self, in_channels: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int, reduce: bool):
        super().__init__()

        def conv(cin: int, cout: int, k: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))

        self.branch1 = conv(in_channels, c1, 1)
        if reduce:
            self.branch3 = nn.Sequential(conv(in_channels, c3r, 1), conv(c3r, c3, 3))
            self.branch5 = nn.Sequential(conv(in_channels, c5r, 1), conv(c5r, c5, 5))
            self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(in_channels, pool_proj, 1))
        else:
            self.branch3 = conv(in_channels, c3, 3)
            self.branch5 = conv(in_channels, c5, 5)
            self.branch_pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


def double_conv(cin: int, cout: int) -> nn.Module:
    """U-Net's two 3×3 convolutions with ReLU (padded, so sizes are kept)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True)
    )


class UNet(nn.Module):
    """U-Net (Ronneberger et al.); ``skips=False`` drops the encoder-to-decoder concatenations."""

    def __init__(self, in_channels: int, classes: int, base: int, depth: int, skips: bool):
        super().__init__()
        self.skips = skips
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(in_channels, widths[0])])
        self.down.extend(double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.decode = nn.ModuleList(
            double_conv(widths[i] * (2 if skips else 1), widths[i]) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            features.append(x)
        for up, decode, skip in zip(self.up, self.decode, reversed(features[:-1])):
            x = up(x)
            x = decode(torch.cat([skip, x], dim=1) if self.skips else x)
        return self.head(x)


class LatentToImage(nn.Module):
    """Reshape a latent vector (B, n) to (B, n, 1, 1) for a convolutional generator."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(z.shape[0], -1, 1, 1)
