"""CAT-Seg's cost aggregation (Cho et al. 2023, §3.2–3.4, Fig. 3), the baseline of the physically guided
paper (Tab. 3 "Our baseline is CAT"). Written from the CAT-Seg paper and read against
cvlab-kaist/CAT-Seg ``cat_seg/modeling/transformer/model.py`` (``Aggregator``).

- cost embedding: a 7×7 conv over each class slice of the cost volume (B, P, K, h, w) → (B, C, K, h, w);
- *spatial aggregation*: per class slice, two Swin-style windowed self-attention blocks (the second
  with windows shifted by half a window) whose queries and keys also see the projected appearance
  guidance (the CLIP dense features);
- *class aggregation*: at every (pooled) position, attention across the K classes whose queries and
  keys also see the projected text guidance; no positional encoding over classes, so permuting the
  classes permutes the output (:class:`ClassAggregation` is permutation-equivariant);
- an upsampling decoder: two ×2 transposed-conv + double-conv stages, each concatenating guidance
  from intermediate CLIP layers, and a 3×3 conv to one logit per class and pixel.

Not taken from CAT-Seg: the learnable padding of the class tokens to 256 (``pad_len``), the top-k
class pre-selection for vocabularies over 256, and per-template cost channels (the kit's text banks
ensemble templates into one embedding, so P = 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _elu1(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1


class WindowBlock(nn.Module):
    """A Swin block with guidance: LN → windowed MHA (q, k from [x, guidance]; v from x) → + → LN → MLP → +.

    Args:
        dim: C. guidance_dim: G (0 = none). heads: attention heads. window: window side.
        shift: cyclic shift (0 or window // 2; shifted windows mask attention across the wrap-around).
    """

    def __init__(self, dim: int, guidance_dim: int, heads: int, window: int, shift: int = 0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden dim {dim} is not divisible by heads {heads}")
        self.heads, self.window, self.shift = heads, window, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _region_mask(self, hp: int, wp: int, device) -> torch.Tensor | None:
        if not self.shift:
            return None
        w, s = self.window, self.shift
        img = torch.zeros(hp, wp, device=device)
        cnt = 0
        for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
                img[hs, ws] = cnt
                cnt += 1
        win = img.reshape(hp // w, w, wp // w, w).permute(0, 2, 1, 3).reshape(-1, w * w)
        diff = win[:, :, None] != win[:, None, :]
        return torch.zeros(diff.shape, device=device).masked_fill(diff, float("-inf"))  # (nW, N, N)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x: (N, H, W, C); guidance: (N, H, W, G) or None → (N, H, W, C)."""
        n, h, w, c = x.shape
        win = self.window
        y = self.norm1(x)
        if guidance is not None:
            y_qk = torch.cat([y, guidance], -1)
        else:
            y_qk = y
        ph, pw = -h % win, -w % win
        if ph or pw:
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
            y_qk = F.pad(y_qk, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
            y_qk = torch.roll(y_qk, (-self.shift, -self.shift), (1, 2))

        def part(t):
            return t.reshape(n, hp // win, win, wp // win, win, -1).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, t.shape[-1])

        q, k, v = self.q(part(y_qk)), self.k(part(y_qk)), self.v(part(y))
        bw, nt, _ = q.shape
        q, k, v = (t.reshape(bw, nt, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
        mask = self._region_mask(hp, wp, x.device)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.reshape(bw // nw, nw, self.heads, nt, nt) + mask[None, :, None]).reshape(bw, self.heads, nt, nt)
        out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(bw, nt, c)
        out = self.proj(out).reshape(n, hp // win, wp // win, win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, c)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), (1, 2))
        x = x + out[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class SpatialAggregation(nn.Module):
    """Spatial aggregation of CAT-Seg (§3.3): two window blocks (plain, shifted) on every class slice."""

    def __init__(self, dim: int, guidance_dim: int, heads: int, window: int):
        super().__init__()
        self.block1 = WindowBlock(dim, guidance_dim, heads, window, 0)
        self.block2 = WindowBlock(dim, guidance_dim, heads, window, window // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim else None

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x: (B, C, K, H, W); guidance: (B, G, H, W) or None → (B, C, K, H, W)."""
        b, c, k, h, w = x.shape
        y = x.permute(0, 2, 3, 4, 1).reshape(b * k, h, w, c)
        g = None
        if guidance is not None and self.guidance_norm is not None:
            g = self.guidance_norm(guidance.permute(0, 2, 3, 1))
            g = g[:, None].expand(b, k, h, w, g.shape[-1]).reshape(b * k, h, w, -1)
        y = self.block2(self.block1(y, g), g)
        return y.reshape(b, k, h, w, c).permute(0, 4, 1, 2, 3)


class ClassAggregation(nn.Module):
    """Class aggregation of CAT-Seg (§3.4): attention across the K classes at each pooled position.

    q, k = Linear([LN(x), text guidance]), v = Linear(LN(x)); ``linear`` attention (elu + 1 feature map,
    CAT-Seg's default) or ``full`` softmax attention; residual, LN → MLP, residual; the pooled result is
    upsampled back (bilinear) and added to x. Nothing depends on the class order.

    Args:
        dim: C. guidance_dim: G. heads: attention heads. pooling: average-pool side before the attention
            (CAT-Seg ``POOLING_SIZES``; 1 = none). attention: ``linear`` or ``full``.
    """

    def __init__(self, dim: int, guidance_dim: int, heads: int, pooling: int = 1, attention: str = "linear"):
        super().__init__()
        if attention not in ("linear", "full"):
            raise ValueError(f"class attention must be 'linear' or 'full', got {attention!r}")
        self.heads, self.pooling, self.attention = heads, int(pooling), attention
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))

    def _attend(self, q, k, v):
        n, t, c = q.shape
        q, k, v = (z.reshape(n, t, self.heads, -1) for z in (q, k, v))
        if self.attention == "full":
            a = torch.einsum("nthd,nshd->nhts", q, k) * (q.shape[-1] ** -0.5)
            out = torch.einsum("nhts,nshd->nthd", a.softmax(-1), v)
        else:
            q, k = _elu1(q), _elu1(k)
            kv = torch.einsum("nshd,nshe->nhde", k, v)
            z = 1.0 / (torch.einsum("nthd,nhd->nth", q, k.sum(1)) + 1e-6)
            out = torch.einsum("nthd,nhde,nth->nthe", q, kv, z)
        return out.reshape(n, t, c)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None, pooling: int | None = None) -> torch.Tensor:
        """x: (B, C, K, H, W); guidance: (B, K, G) or None; ``pooling`` overrides the pool side → (B, C, K, H, W)."""
        b, c, k, h, w = x.shape
        p = self.pooling if pooling is None else int(pooling)
        y = x.permute(0, 2, 1, 3, 4).reshape(b * k, c, h, w)
        if p > 1:
            y = F.avg_pool2d(y, p, ceil_mode=True)
        hp, wp = y.shape[-2:]
        tok = y.reshape(b, k, c, hp * wp).permute(0, 3, 1, 2).reshape(b * hp * wp, k, c)
        n1 = self.norm1(tok)
        qk_in = n1
        if guidance is not None:
            g = guidance[:, None].expand(b, hp * wp, k, guidance.shape[-1]).reshape(b * hp * wp, k, -1)
            qk_in = torch.cat([n1, g], -1)
        tok = tok + self.proj(self._attend(self.q(qk_in), self.k(qk_in), self.v(n1)))
        tok = tok + self.mlp(self.norm2(tok))
        y = tok.reshape(b, hp, wp, k, c).permute(0, 3, 4, 1, 2).reshape(b * k, c, hp, wp)
        if (hp, wp) != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=True)
        return x + y.reshape(b, k, c, h, w).permute(0, 2, 1, 3, 4)


class UpBlock(nn.Module):
    """Decoder stage: ×2 transposed conv, concatenate the guidance, two 3×3 conv + GroupNorm + ReLU."""

    def __init__(self, in_dim: int, out_dim: int, guidance_dim: int):
        super().__init__()
        if in_dim <= guidance_dim:
            raise ValueError(f"decoder stage input {in_dim} must exceed its guidance width {guidance_dim}")
        self.up = nn.ConvTranspose2d(in_dim, in_dim - guidance_dim, 2, stride=2)
        groups = max(1, out_dim // 16)
        self.conv = nn.Sequential(
            nn.Conv2d(in_dim, out_dim, 3, padding=1, bias=False), nn.GroupNorm(groups, out_dim), nn.ReLU(),
            nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False), nn.GroupNorm(groups, out_dim), nn.ReLU())

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x: (B·K, C, h, w); guidance: (B, G, 2h, 2w) → (B·K, out, 2h, 2w)."""
        x = self.up(x)
        if guidance is not None:
            rep = x.shape[0] // guidance.shape[0]
            x = torch.cat([x, guidance.repeat_interleave(rep, 0)], 1)
        return self.conv(x)


class CostAggregator(nn.Module):
    """Cost volume → per-class logits at 4× the token grid (CAT-Seg ``Aggregator``).

    Args:
        visual_dim: width of the dense CLIP image embeddings (joint space D) used for the appearance guidance.
        text_dim: width of the text embeddings D.
        hidden_dim: cost-embedding width [128].
        appearance_guidance_dim, text_guidance_dim: projected guidance widths [128, 128].
        decoder_dims: widths of the two decoder stages [64, 32].
        decoder_guidance_in: channels of the two decoder guidance maps (after the CLIP-side upsampling) [256, 128].
        decoder_guidance_dims: their projected widths [32, 16].
        num_layers: aggregation layers (spatial + class) [2].
        heads: attention heads [4]. window: spatial window side [12]. pooling: class-aggregation pooling
            in training [2]. class_attention: ``linear`` or ``full`` [linear].
    """

    def __init__(self, visual_dim: int, text_dim: int, *, hidden_dim: int = 128, appearance_guidance_dim: int = 128,
                 text_guidance_dim: int = 128, decoder_dims=(64, 32), decoder_guidance_in=(256, 128),
                 decoder_guidance_dims=(32, 16), num_layers: int = 2, heads: int = 4, window: int = 12,
                 pooling: int = 2, class_attention: str = "linear", prompt_channels: int = 1):
        super().__init__()
        self.cost_embed = nn.Conv2d(prompt_channels, hidden_dim, 7, padding=3)
        self.appearance = nn.Sequential(nn.Conv2d(visual_dim, appearance_guidance_dim, 3, padding=1), nn.ReLU())
        self.text_guidance = nn.Sequential(nn.Linear(text_dim, text_guidance_dim), nn.ReLU())
        self.spatial = nn.ModuleList(SpatialAggregation(hidden_dim, appearance_guidance_dim, heads, window)
                                     for _ in range(num_layers))
        self.classwise = nn.ModuleList(ClassAggregation(hidden_dim, text_guidance_dim, heads, pooling, class_attention)
                                       for _ in range(num_layers))
        self.decoder_guidance = nn.ModuleList(
            nn.Sequential(nn.Conv2d(gi, go, 3, padding=1), nn.ReLU()) for gi, go in zip(decoder_guidance_in, decoder_guidance_dims))
        self.up1 = UpBlock(hidden_dim, decoder_dims[0], decoder_guidance_dims[0])
        self.up2 = UpBlock(decoder_dims[0], decoder_dims[1], decoder_guidance_dims[1])
        self.head = nn.Conv2d(decoder_dims[1], 1, 3, padding=1)

    def forward(self, cost: torch.Tensor, image_embed: torch.Tensor, text: torch.Tensor,
                decoder_guidance: list[torch.Tensor], *, pooling: int | None = None) -> torch.Tensor:
        """Aggregate a cost volume.

        Args:
            cost: (B, P, K, h, w) cosine similarities of image and class embeddings.
            image_embed: (B, D, h, w) dense CLIP embeddings (appearance guidance).
            text: (B, K, D) class text embeddings (text guidance).
            decoder_guidance: two maps (B, C_i, 2h, 2w) and (B, C_j, 4h, 4w).
            pooling: class-aggregation pool side (``None`` = the layer's; CAT-Seg evaluates with 1).

        Returns:
            (B, K, 4h, 4w) logits.
        """
        b, p, k, h, w = cost.shape
        x = self.cost_embed(cost.permute(0, 2, 1, 3, 4).reshape(b * k, p, h, w))
        x = x.reshape(b, k, -1, h, w).permute(0, 2, 1, 3, 4)
        ga = self.appearance(image_embed)
        gt = self.text_guidance(text)
        for sp, cl in zip(self.spatial, self.classwise):
            x = cl(sp(x, ga), gt, pooling)
        g1, g2 = (proj(g) for proj, g in zip(self.decoder_guidance, decoder_guidance))
        y = x.permute(0, 2, 1, 3, 4).reshape(b * k, -1, h, w)
        y = self.head(self.up2(self.up1(y, g1), g2))
        return y.reshape(b, k, 4 * h, 4 * w)
