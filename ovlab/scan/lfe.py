"""Low-frequency enhancement (LFE) of CLIP spatial tokens: SCAN §3.1, Eq. 1.

The spectrum is **not** shifted (``torch.fft.fft2``, default "backward" normalisation), so DC sits
at (0, 0) and the highest frequencies at the array centre (⌊h/2⌋, ⌊w/2⌋). The multiplicative map
is 1 − g with g a Gaussian centred at the array centre: 0 at the centre (high frequencies removed),
rising towards 1 at the corners (low frequencies kept). σ is in frequency-bin units.

Variants ([CODE≠PAPER]):

- ``code`` (official yongliu20/SCAN ``scan/frequency.py`` ``LFM``): Conv1×1 → ReLU → Conv1×1 on the concatenated
  real/imaginary parts, every conv 2C → 2C with bias;
- ``paper`` (Eq. 1 as printed): Conv1×1 → ReLU.

Both end with Out = X + Re(IFFT2(·)): the residual adds the **unfiltered** input.
"""

from __future__ import annotations

import torch
import torch.nn as nn

LFE_VARIANTS = ("code", "paper")


def frequency_filter(h: int, w: int, sigma: float, *, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """The multiplicative spectrum map 1 − g of SCAN Eq. 1 (g^i; ``scan/frequency.py``).

    g(u, v) = exp(−((u − ⌊h/2⌋)² + (v − ⌊w/2⌋)²) / (2σ²)), u = 0..h−1 (rows), v = 0..w−1 (columns).
    Example (16×16, σ = 9): 0 at (8, 8); at DC (0, 0) 1 − exp(−128/162) ≈ 0.546.

    Args:
        h, w: spectrum size (the token grid), ≥ 1.
        sigma: Gaussian width in frequency bins, > 0 (SCAN ViT-L: 9, 7, 3).
        dtype, device: of the result.

    Returns:
        (h, w) tensor in [0, 1).

    Raises:
        ValueError: h or w < 1, or sigma ≤ 0.
    """
    if h < 1 or w < 1:
        raise ValueError(f"frequency_filter: grid must be at least 1×1, got {h}×{w}")
    if not sigma > 0:
        raise ValueError(f"frequency_filter: sigma must be > 0, got {sigma}")
    u = torch.arange(h, dtype=torch.float64).view(h, 1) - h // 2
    v = torch.arange(w, dtype=torch.float64).view(1, w) - w // 2
    g = torch.exp(-(u ** 2 + v ** 2) / (2.0 * float(sigma) ** 2))
    return (1.0 - g).to(dtype=dtype, device=device)


class LowFrequencyEnhancement(nn.Module):
    """LFE of one token grid: SCAN Eq. 1 / ``LFM`` of yongliu20/SCAN ``scan/frequency.py``.

    Y = FFT2(X) ⊙ (1 − g_σ); Z = [Re Y, Im Y] (channels); Z ← convs(Z); Y' = Z[:C] + i·Z[C:];
    Out = X + Re(IFFT2(Y')). X is cast to float32 first (as the code does).

    Args:
        channels: C, the CLIP width (1024 for ViT-L, 768 for ViT-B, 64 for ``ovlab-tiny-vit``).
        variant: ``code`` (Conv–ReLU–Conv) or ``paper`` (Conv–ReLU); see the module docstring.

    Raises:
        ValueError: unknown variant or channels < 1.
    """

    def __init__(self, channels: int, variant: str = "code") -> None:
        super().__init__()
        if variant not in LFE_VARIANTS:
            raise ValueError(f"LFE variant must be one of {LFE_VARIANTS}, got {variant!r}")
        if channels < 1:
            raise ValueError(f"LFE channels must be ≥ 1, got {channels}")
        self.channels = int(channels)
        self.variant = variant
        self.conv1 = nn.Conv2d(2 * channels, 2 * channels, kernel_size=1)
        self.conv2 = nn.Conv2d(2 * channels, 2 * channels, kernel_size=1) if variant == "code" else None

    def forward(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """Enhance one grid.

        Args:
            x: (B, C, h, w) spatial tokens (any float dtype).
            sigma: the layer's cut-off σ in frequency bins (> 0).

        Returns:
            (B, C, h, w) float32.

        Raises:
            ValueError: x is not (B, C, h, w) with C = ``channels``.
        """
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"LFE expects (B, {self.channels}, h, w), got {tuple(x.shape)}")
        x = x.float()
        h, w = x.shape[-2:]
        y = torch.fft.fft2(x) * frequency_filter(h, w, sigma, device=x.device)
        z = torch.relu(self.conv1(torch.cat([y.real, y.imag], dim=1)))
        if self.conv2 is not None:
            z = self.conv2(z)
        re, im = torch.chunk(z.float(), 2, dim=1)
        return x + torch.fft.ifft2(torch.complex(re, im), s=(h, w)).real
