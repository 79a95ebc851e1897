"""torch models the tests share, written the way their authors write them: a
torchvision-style ResNet block, a ViT, an MLP-Mixer, a ConvNeXt block, nanoGPT's own model
code (`REFERENCE`), and smaller ones."""

import math
from collections import OrderedDict
from dataclasses import dataclass

import pytest
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional



class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock with a downsampling shortcut, then the pool and fc."""

    def __init__(self, inplanes=2, planes=4, stride=2):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, 3)

    def forward(self, x):
        identity = self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out = self.relu(out + identity)
        return self.fc(torch.flatten(self.avgpool(out), 1))


class SwiGLU(nn.Module):
    """A Llama-style feed-forward block on (N, T, d), then the mean over tokens and a head."""

    def __init__(self, d=4, hidden=6):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        h = self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))
        return self.head(h.mean(1))


class SwiGLUFFN(nn.Module):
    """DINOv2's (dinov2/layers/swiglu_ffn.py), as xformers writes it too: one Linear for both
    of SwiGLU's input projections, its output chunked in two."""

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=None, drop=0.0, bias=True):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.w12 = nn.Linear(in_features, 2 * hidden_features, bias=bias)
        self.w3 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x):
        x12 = self.w12(x)
        x1, x2 = x12.chunk(2, dim=-1)
        hidden = F.silu(x1) * x2
        return self.w3(hidden)


class SplitSwiGLUFFN(SwiGLUFFN):
    """The same, its halves cut by ``split(hidden, -1)``."""

    def forward(self, x):
        x1, x2 = self.w12(x).split(self.w3.in_features, dim=-1)
        return self.w3(F.silu(x1) * x2)


class FusedSwiGLU(nn.Module):
    """`SwiGLU`'s model with DINOv2's fused SwiGLUFFN (or `SplitSwiGLUFFN`) in a residual
    block, then the mean over tokens and a head."""

    def __init__(self, d=4, hidden=6, bias=True, split=False):
        super().__init__()
        self.ffn = (SplitSwiGLUFFN if split else SwiGLUFFN)(d, hidden, bias=bias)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        return self.head((x + self.ffn(x)).mean(1))


class Reshaped(nn.Module):
    """A convolution on an input the forward reshapes first: a channel added to a signal,
    ``x.unsqueeze(1)`` (``image=False``), or an image from its pixels, ``x.view(x.size(0),
    1, 6, 6)`` (an MNIST net fed flattened digits)."""

    def __init__(self, image=True):
        super().__init__()
        self.image = image
        self.conv = nn.Conv2d(1, 2, 3) if image else nn.Conv1d(1, 2, 3)
        self.head = nn.Linear(2 * 4 * 4 if image else 2 * 6, 2)

    def forward(self, x):
        x = x.view(x.size(0), 1, 6, 6) if self.image else x.unsqueeze(1)
        return self.head(torch.relu(self.conv(x)).flatten(1))


class SqueezeExcitation(nn.Module):
    """torchvision's (torchvision/ops/misc.py), verbatim."""

    def __init__(self, input_channels, squeeze_channels, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input):
        scale = self.avgpool(input)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale)

    def forward(self, input):
        scale = self._scale(input)
        return scale * input


class ExcitedBlock(nn.Module):
    """MobileNetV3's inverted residual with squeeze-and-excitation, as torchvision builds it
    (expand 1x1, depthwise 3x3, SE with Hardsigmoid, project 1x1, the residual sum), then a
    global pool and a head."""

    def __init__(self, channels=4, expanded=8, squeezed=2, activation=nn.ReLU, scale_activation=nn.Hardsigmoid):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, expanded, 1, bias=False), nn.BatchNorm2d(expanded), activation(),
            nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded, bias=False), nn.BatchNorm2d(expanded),
            activation(), SqueezeExcitation(expanded, squeezed, scale_activation=scale_activation),
            nn.Conv2d(expanded, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(channels, 3)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(x + self.block(x)), 1))


class SqueezeExcite(nn.Module):
    """timm's (timm/layers/squeeze_excite.py), its forward verbatim: the pool a keepdim mean."""

    def __init__(self, channels, rd_channels):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.conv_reduce(x_se)
        x_se = self.act1(x_se)
        x_se = self.conv_expand(x_se)
        return x * self.gate(x_se)


class Excited(nn.Module):
    """A convolution, a ReLU, torchvision's SqueezeExcitation (or timm's SqueezeExcite), a
    global mean and a head."""

    def __init__(self, timm=False):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 2)
        self.se = SqueezeExcite(4, 2) if timm else SqueezeExcitation(4, 2)

    def forward(self, x):
        return self.head(self.se(torch.relu(self.conv(x))).mean((2, 3)))


class Functional(nn.Module):
    """The functional forms of layers, as people write them in ``forward``."""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p
        self.conv1, self.conv2, self.fc = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.Linear(4, 2)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.conv1(x).relu(), 2)
        x = nn.functional.leaky_relu(self.conv2(x), negative_slope=0.2) * 0.5
        x = nn.functional.dropout2d(nn.functional.dropout(x, self.p, self.training), self.p, self.training)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, (1, 1)), 1)) / 4


class BagOfEmbeddings(nn.Module):
    """A fastText-style text classifier: token embeddings, averaged, then an MLP."""

    def __init__(self, vocabulary=20, padding_idx=None):
        super().__init__()
        self.emb = nn.Embedding(vocabulary, 6, padding_idx=padding_idx)
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, ids):
        return self.fc2(torch.relu(self.fc1(self.emb(ids).mean(1))))


class Encoder(nn.Module):
    """A transformer encoder layer as people write one, then a pooled head."""

    def __init__(self, norm_first, activation="relu", dropout=0.1):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=dropout, batch_first=True,
                                                norm_first=norm_first, activation=activation)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.layer(x).mean(1))


class PositionalEncoding(nn.Module):
    """The PyTorch tutorial's (and the Annotated Transformer's): sin and cos of t / 10000^(2i/d),
    interleaved, built in float32 (``dtype``) and registered as a buffer, added to the first T rows."""

    def __init__(self, d, dropout=0.1, max_len=64, dtype=torch.float32):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=dtype).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d, 2, dtype=dtype) * (-math.log(10000.0) / d))
        pe = torch.zeros(1, max_len, d, dtype=dtype)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return self.dropout(x + self.pe[:, :x.size(1)])


class TutorialTransformer(nn.Module):
    """The PyTorch tutorial's language model ("Language Modeling with nn.Transformer"), batch
    first: token embeddings times sqrt(d), the sinusoidal encoding, a TransformerEncoder, and
    logits over the vocabulary at every position."""

    def __init__(self, ntoken=8, d=8, nhead=2, d_hid=16, nlayers=2, dropout=0.0, table=torch.float32):
        super().__init__()
        self.d = d
        self.embedding, self.pos_encoder = nn.Embedding(ntoken, d), PositionalEncoding(d, dropout, dtype=table)
        layer = nn.TransformerEncoderLayer(d, nhead, d_hid, dropout, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.linear = nn.Linear(d, ntoken)

    def forward(self, src):
        src = self.pos_encoder(self.embedding(src) * math.sqrt(self.d))
        return self.linear(self.transformer_encoder(src))


class SequenceFirst(nn.Module):
    """Torch's attention in its default layout, batch_first=False, on (T, N, ...) values, as
    the PyTorch tutorials and fairseq write it: token ids (T, N) embedded times sqrt(d), the
    sinusoidal table as a (max_len, 1, d) buffer added as ``x + self.pe[:x.size(0)]``, an
    nn.TransformerEncoder (the causal mask made from ``x.size(0)`` if ``causal``), then
    logits at every position (``readout="tokens"``), of the first position (``"first"``,
    x[0]), or of the mean over positions (``"mean"``, x.mean(0)). ``batch_first``: the same
    model written batch first, its twin."""

    def __init__(self, ntoken=8, d=8, nhead=2, layers=1, readout="tokens", causal=False, norm_first=False,
                 batch_first=False, max_len=16):
        super().__init__()
        self.d, self.readout, self.causal, self.batch_first = d, readout, causal, batch_first
        self.embedding = nn.Embedding(ntoken, d)
        position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
        angles = position * torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d, dtype=torch.float64)
        pe[:, 0, 0::2], pe[:, 0, 1::2] = torch.sin(angles), torch.cos(angles)
        self.register_buffer("pe", pe.transpose(0, 1) if batch_first else pe)
        layer = nn.TransformerEncoderLayer(d, nhead, 2 * d, 0.0, batch_first=batch_first, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, ntoken)

    def forward(self, src):
        T = src.size(1 if self.batch_first else 0)
        x = self.embedding(src) * math.sqrt(self.d)
        x = x + (self.pe[:, :T] if self.batch_first else self.pe[:T])
        mask = nn.Transformer.generate_square_subsequent_mask(T, src.device) if self.causal else None
        x = self.encoder(x, mask=mask, is_causal=self.causal)
        if self.readout == "first":
            x = x[:, 0] if self.batch_first else x[0]
        elif self.readout == "mean":
            x = x.mean(1 if self.batch_first else 0)
        return self.head(x)


device = torch.device("cpu")  # the tutorial's global


class TutorialPositionalEncoding(nn.Module):
    """The PyTorch tutorial's ("Language Modeling with nn.Transformer"), verbatim."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)

        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer('pe', pe)

    def forward(self, x):
        """x: Tensor, shape ``[seq_len, batch_size, embedding_dim]``"""
        x = x + self.pe[:x.size(0)]
        return self.dropout(x)


class TransformerModel(nn.Module):
    """The PyTorch tutorial's language model, verbatim: sequence first, ``len(src)``, the
    mask made in forward when none is given."""

    def __init__(self, ntoken: int, d_model: int, nhead: int, d_hid: int, nlayers: int, dropout: float = 0.5):
        super().__init__()
        self.model_type = 'Transformer'
        self.pos_encoder = TutorialPositionalEncoding(d_model, dropout)
        encoder_layers = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.transformer_encoder = nn.TransformerEncoder(encoder_layers, nlayers, enable_nested_tensor=False)
        self.embedding = nn.Embedding(ntoken, d_model)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, ntoken)

        self.init_weights()

    def init_weights(self) -> None:
        initrange = 0.1
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.linear.bias.data.zero_()
        self.linear.weight.data.uniform_(-initrange, initrange)

    def forward(self, src, src_mask=None):
        """src: Tensor, shape ``[seq_len, batch_size]``; src_mask: Tensor, ``[seq_len, seq_len]``"""
        src = self.embedding(src) * math.sqrt(self.d_model)
        src = self.pos_encoder(src)
        if src_mask is None:
            src_mask = nn.Transformer.generate_square_subsequent_mask(len(src)).to(device)
        output = self.transformer_encoder(src, src_mask)
        output = self.linear(output)
        return output


class EncoderGPT(nn.Module):
    """A decoder-only model written with torch's encoder, as many write one: token and
    position embeddings, nn.TransformerEncoder with the causal mask (made from the length by
    ``generate_square_subsequent_mask``, or a registered buffer sliced to it), logits at
    every position."""

    def __init__(self, vocabulary=8, d=8, heads=2, layers=1, T=5, buffer=False, norm_first=True):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocabulary, d), nn.Embedding(T, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, 0.0, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocabulary)
        self.buffer = buffer
        if buffer:
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(T))

    def forward(self, idx):
        T = idx.size(1)
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        mask = self.mask[:T, :T] if self.buffer else nn.Transformer.generate_square_subsequent_mask(T, idx.device)
        return self.head(self.encoder(x, mask=mask, is_causal=True))


class GPT(nn.Module):
    """A GPT-style language model as people write one with torch's attention: token
    embeddings, a pre-norm block with causal self-attention (the mask a buffer) and a GELU
    MLP, a final LayerNorm and a head over the vocabulary."""

    def __init__(self, vocabulary=16, d=8, heads=2, T=5):
        super().__init__()
        self.wte = nn.Embedding(vocabulary, d)
        self.ln1, self.attn = nn.LayerNorm(d), nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocabulary, bias=False)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

    def forward(self, idx):
        x = self.wte(idx)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=self.mask, need_weights=False)[0]
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln_f(x))


class ViT(nn.Module):
    """A vision transformer as torchvision writes one: a convolutional patch embedding
    reshaped and permuted into a sequence, a class token, learned position embeddings,
    pre-norm encoder blocks, and the class token's read-out through a LayerNorm and a head."""

    def __init__(self, image=4, patch=2, d=4, heads=2, depth=1, classes=3):
        super().__init__()
        self.patch, self.d = patch, d
        self.conv_proj = nn.Conv2d(3, d, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embedding = nn.Parameter(torch.empty(1, (image // patch) ** 2 + 1, d).normal_(std=0.02))
        block = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        n, _, h, w = x.shape
        x = self.conv_proj(x).reshape(n, self.d, (h // self.patch) * (w // self.patch)).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = self.encoder(x + self.pos_embedding)
        return self.head(self.ln(x[:, 0]))


class Mlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MixerBlock(nn.Module):
    def __init__(self, tokens, d):
        super().__init__()
        self.norm1, self.mlp_tokens = nn.LayerNorm(d), Mlp(tokens, 2 * tokens)
        self.norm2, self.mlp_channels = nn.LayerNorm(d), Mlp(d, 2 * d)

    def forward(self, x):
        x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp_channels(self.norm2(x))


class Mixer(nn.Module):
    """MLP-Mixer as its authors write it: patches by a strided convolution, flattened and
    transposed into tokens, token-mixing and channel-mixing MLP blocks, the mean over tokens."""

    def __init__(self, image=4, patch=2, d=4, depth=1, classes=3):
        super().__init__()
        self.stem = nn.Conv2d(3, d, patch, stride=patch)
        self.blocks = nn.Sequential(*(MixerBlock((image // patch) ** 2, d) for _ in range(depth)))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(dim=1))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: a depthwise convolution, channels last for a LayerNorm and a GELU
    MLP, a layer scale, channels first again, and the residual sum."""

    def __init__(self, dim, kernel=7, layer_scale=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x):
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        return shortcut + x.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, dim=4, kernel=7, layer_scale=1e-6, classes=3):
        super().__init__()
        self.stem, self.stem_norm = nn.Conv2d(3, dim, 2, stride=2), nn.LayerNorm(dim, eps=1e-6)
        self.block = ConvNeXtBlock(dim, kernel, layer_scale)
        self.norm, self.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.stem_norm(self.stem(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.head(self.norm(self.block(x).mean([-2, -1])))


@dataclass
class GPTConfig:  # nanoGPT's model.py, at a small size
    block_size: int = 5
    vocab_size: int = 8
    n_layer: int = 1
    n_head: int = 2
    n_embd: int = 4
    dropout: float = 0.1
    bias: bool = True


class LayerNorm(nn.Module):
    """LayerNorm but with an optional bias (nanoGPT's, verbatim)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    """nanoGPT's, verbatim: its flash path, or (``flash=False``, as on torch < 2.0) its manual one."""

    def __init__(self, config, flash=True):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.flash = flash and hasattr(torch.nn.functional, "scaled_dot_product_attention")
        if not self.flash:
            self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                                 .view(1, 1, config.block_size, config.block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            y = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        y = self.resid_dropout(self.c_proj(y))
        return y


def rotate_half(x):
    """Hugging Face's Llama: the second half of the features, negated, before the first."""
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(hidden_states, n_rep):
    """Hugging Face's Llama, verbatim: each key/value head repeated n_rep times in turn."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def rotate_pairs(x):
    """GPT-J's: each adjacent pair (a, b) to (-b, a)."""
    return torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)


class LlamaAttention(nn.Module):
    """Llama's attention as Hugging Face writes it (q, k, v and o projections without
    biases, cos and sin of the positions' angles with each frequency twice, q * cos +
    rotate_half(q) * sin, causal F.scaled_dot_product_attention); ``pairs``: GPT-J's
    adjacent pairs, each frequency repeated in place; ``float32``: the angles computed in
    float32 from an inv_freq buffer, as Hugging Face's are; ``kv_heads``: grouped-query
    attention by Hugging Face's ``repeat_kv``; ``base``: Llama 3's is 500000 (``start``,
    positions from another than 0, and ``keys=False``, keys left unrotated: what flowlaws
    refuses)."""

    def __init__(self, d=4, heads=2, pairs=False, base=10000.0, keys=True, float32=False, kv_heads=None, start=0):
        super().__init__()
        self.heads, self.width, self.pairs, self.base, self.keys = heads, d // heads, pairs, base, keys
        self.start = start  # the first position
        self.kv_heads = kv_heads or heads
        self.q_proj, self.o_proj = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.k_proj, self.v_proj = (nn.Linear(d, self.kv_heads * self.width, bias=False) for _ in range(2))
        self.float32 = float32
        if float32:  # Hugging Face's: inv_freq a buffer, the angles in float32 whatever the module's dtype
            self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, self.width, 2).float() / self.width))

    def rotary(self, x):
        T = x.shape[1]
        if self.float32:
            freqs = torch.outer(torch.arange(self.start, self.start + T).float(), self.inv_freq.float())
        else:
            inv_freq = 1.0 / self.base ** (torch.arange(0, self.width, 2, dtype=x.dtype) / self.width)
            freqs = torch.outer(torch.arange(self.start, self.start + T, dtype=x.dtype), inv_freq)
        emb = torch.repeat_interleave(freqs, 2, dim=-1) if self.pairs else torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    def forward(self, x):
        N, T, d = x.shape
        q = self.q_proj(x).view(N, T, self.heads, self.width).transpose(1, 2)
        k, v = (p(x).view(N, T, self.kv_heads, self.width).transpose(1, 2) for p in (self.k_proj, self.v_proj))
        cos, sin = self.rotary(x)
        rotate = rotate_pairs if self.pairs else rotate_half
        q, k = q * cos + rotate(q) * sin, (k * cos + rotate(k) * sin) if self.keys else k
        k, v = repeat_kv(k, self.heads // self.kv_heads), repeat_kv(v, self.heads // self.kv_heads)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).contiguous().view(N, T, d))


class LlamaMLP(nn.Module):
    """Hugging Face's, verbatim: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases."""

    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.down_proj, self.act_fn = nn.Linear(hidden, d, bias=False), nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        """
        LlamaRMSNorm is equivalent to T5LayerNorm
        """  # Hugging Face's (transformers/models/llama/modeling_llama.py), verbatim
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class MetaRMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()  # Meta's Llama (llama/model.py) and llama2.c's RMSNorm, verbatim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        output = self._norm(x.float()).type_as(x)
        return output * self.weight


class Llama(nn.Module):
    """A Llama decoder layer as Hugging Face's LlamaDecoderLayer: RMSNorm, attention, the
    residual sum, RMSNorm, the SwiGLU MLP, the residual sum; then the mean over tokens and
    a head (``mlp=False``: the attention's residual alone; ``norm``: torch's nn.RMSNorm, or
    Hugging Face's `LlamaRMSNorm` written out)."""

    def __init__(self, d=4, heads=2, pairs=False, classes=3, mlp=True, norm=nn.RMSNorm, **options):
        super().__init__()
        self.input_layernorm, self.self_attn = norm(d), LlamaAttention(d, heads, pairs, **options)
        self.post_attention_layernorm, self.mlp = (norm(d), LlamaMLP(d, 2 * d)) if mlp else (None, None)
        self.head = nn.Linear(d, classes, bias=False)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        if self.mlp is not None:
            x = x + self.mlp(self.post_attention_layernorm(x))
        return self.head(x.mean(1))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        x = self.c_fc(x)
        x = self.gelu(x)
        x = self.c_proj(x)
        x = self.dropout(x)
        return x


class Block(nn.Module):
    def __init__(self, config, flash=True):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, flash)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class NanoGPT(nn.Module):
    """nanoGPT's GPT with its own blocks, weight tying and forward, less what fx cannot
    trace (the assert on the length, the loss and the inference-time last position)."""

    def __init__(self, dropout=0.1, tied=True, flash=True, **sizes):
        super().__init__()
        config = GPTConfig(dropout=dropout, **sizes)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, flash) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if tied:
            self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        device = idx.device
        b, t = idx.size()  # noqa: RUF059 (nanoGPT verbatim)
        pos = torch.arange(0, t, dtype=torch.long, device=device)
        tok_emb = self.transformer.wte(idx)
        pos_emb = self.transformer.wpe(pos)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        return self.lm_head(x)


class ConvBNActivation(nn.Sequential):
    """torchvision's Conv2dNormActivation as MobileNetV2 builds it: a bias-free convolution,
    BatchNorm, ReLU6 (in place)."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, activation=nn.ReLU6):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        super().__init__(*layers, *([activation(inplace=True)] if activation else []))


class InvertedResidual(nn.Module):
    """MobileNetV2's block as torchvision writes it: a 1x1 expansion, a depthwise 3x3, a
    linear 1x1 projection, and the residual sum where the shapes allow it."""

    def __init__(self, cin, cout, stride, expand_ratio):
        super().__init__()
        hidden = cin * expand_ratio
        self.use_res_connect = stride == 1 and cin == cout
        layers = [ConvBNActivation(cin, hidden, kernel=1)] if expand_ratio != 1 else []
        layers += [ConvBNActivation(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """A small MobileNetV2 (torchvision's forward: features, a global average pool, a dropout
    and a linear classifier), with MobileNetV3's Hardswish classifier when ``v3_head``."""

    def __init__(self, classes=3, v3_head=False, dropout=0.2):
        super().__init__()
        self.features = nn.Sequential(ConvBNActivation(3, 4, stride=2), InvertedResidual(4, 4, 1, 2),
                                      InvertedResidual(4, 6, 2, 2), ConvBNActivation(6, 8, kernel=1))
        head = [nn.Linear(8, 8), nn.Hardswish(inplace=True)] if v3_head else []
        self.classifier = nn.Sequential(*head, nn.Dropout(dropout), nn.Linear(8, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class SquaredReLU(nn.Module):
    """modded-nanoGPT's MLP: ``F.relu(self.c_fc(x)).square()``, then ``c_proj`` (the squared
    ReLU of Primer, So et al. 2021), on a (N, T, d) sequence."""

    def __init__(self, d=4, hidden=8):
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(d, hidden, bias=False), nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class ConformerConvolution(nn.Module):
    """The Conformer's convolution module (Gulati et al. 2020) as speech toolkits write it: a
    pointwise Conv1d to twice the channels, a GLU over the channels, a depthwise Conv1d,
    BatchNorm, SiLU, a pointwise Conv1d, the residual sum; then a linear read-out."""

    def __init__(self, channels=4, length=6, kernel=3, classes=2):
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.glu = nn.GLU(dim=1)
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.batch_norm, self.activation = nn.BatchNorm1d(channels), nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)
        self.head = nn.Linear(channels * length, classes)

    def forward(self, x):
        y = self.glu(self.pointwise_conv1(x))
        y = self.pointwise_conv2(self.activation(self.batch_norm(self.depthwise_conv(y))))
        return self.head((x + y).flatten(1))


class Decoder(nn.Module):
    """A DCGAN-style decoder: a code upsampled by transposed convolutions (a bias-free one
    before a BatchNorm, a grouped one with output_padding), ReLUs, a linear read-out."""

    def __init__(self, classes=3):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(2, 4, 2, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.up2 = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.head = nn.Linear(4 * 8 * 8, classes)

    def forward(self, x):  # (N, 2, 2, 2) -> (N, 4, 4, 4) -> (N, 4, 8, 8)
        x = torch.relu(self.bn(self.up1(x)))
        return self.head(torch.relu(self.up2(x)).flatten(1))


class FeaturePyramid(nn.Module):
    """A feature pyramid's top-down merge (Lin et al. 2017): a coarser map upsampled
    (nn.Upsample, nearest) and added to a lateral 1x1 convolution of the finer one, smoothed
    by a 3x3 convolution; then F.interpolate and a linear read-out."""

    def __init__(self, classes=2):
        super().__init__()
        self.down = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.lateral, self.up = nn.Conv2d(2, 4, 1), nn.Upsample(scale_factor=2)
        self.smooth = nn.Conv2d(4, 3, 3, padding=1)
        self.head = nn.Linear(3 * 8 * 4, classes)

    def forward(self, x):  # (N, 2, 4, 4)
        merged = self.up(torch.relu(self.down(x))) + self.lateral(x)
        y = F.interpolate(torch.relu(self.smooth(merged)), scale_factor=(2, 1))
        return self.head(y.flatten(1))


class UNet(nn.Module):
    """A small U-Net (Ronneberger et al. 2015): an encoder level, a bottleneck one max pool
    down, a transposed convolution up, the skip concatenated with it (torch.cat along the
    channels), a decoder convolution with BatchNorm, a 1x1 read-out and a linear head."""

    def __init__(self, classes=2):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
        self.bottleneck = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(2, 3, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(3, 2, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv2d(4, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.ReLU())
        self.out = nn.Conv2d(2, 2, 1)
        self.head = nn.Linear(32, classes)

    def forward(self, x):  # (N, 1, 4, 4)
        skip = self.enc(x)
        y = torch.cat([skip, self.up(self.bottleneck(skip))], dim=1)
        return self.head(self.out(self.dec(y)).flatten(1))


class DenseNet(nn.Module):
    """Two DenseNet layers (Huang et al. 2017), BN-ReLU-Conv each, their growth concatenated
    to their input (torch.cat([x, out], 1)), then a transition 1x1 convolution, a global
    average pool and a linear classifier."""

    def __init__(self, channels=2, growth=2, classes=3):
        super().__init__()
        self.stem = nn.Conv1d(1, channels, 3, padding=1, bias=False)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm1d(channels + k * growth), nn.ReLU(),
                          nn.Conv1d(channels + k * growth, growth, 3, padding=1, bias=False)) for k in range(2))
        self.transition = nn.Conv1d(channels + 2 * growth, 3, 1)
        self.pool, self.fc = nn.AdaptiveAvgPool1d(1), nn.Linear(3, classes)

    def forward(self, x):  # (N, 1, L)
        x = self.stem(x)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return self.fc(self.pool(torch.relu(self.transition(x))).flatten(1))


class Inception(nn.Module):
    """An Inception module (Szegedy et al. 2015) of three branches, a 1x1 convolution, a
    1x1 then 3x3 one and a max pool then 1x1 one, concatenated in one torch.cat."""

    def __init__(self, classes=2):
        super().__init__()
        self.stem = nn.Conv1d(2, 3, 1)
        self.b1 = nn.Conv1d(3, 2, 1)
        self.b2 = nn.Sequential(nn.Conv1d(3, 2, 1), nn.ReLU(), nn.Conv1d(2, 2, 3, padding=1))
        self.b3 = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(3, 2, 1))
        self.head = nn.Linear(6 * 4, classes)

    def forward(self, x):  # (N, 2, 4)
        x = torch.relu(self.stem(x))
        y = torch.cat([self.b1(x), self.b2(x), self.b3(x)], dim=1)
        return self.head(torch.relu(y).flatten(1))


MODULE_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.CELU, nn.SELU, nn.SiLU,
                      nn.Softplus, nn.Mish, nn.ReLU6, nn.Hardswish, nn.Identity)
CALLED_ACTIVATIONS = (F.relu, F.gelu, F.silu, F.mish, F.relu6, F.hardswish, F.selu, torch.tanh,
                      lambda x: x.clamp(min=0), lambda x: F.relu(x).square(), lambda x: x * 0.5)


class SqueezeExcitation1d(SqueezeExcitation):
    """torchvision's SqueezeExcitation on (N, C, L) signals: its 1-d pool and convolutions."""

    def __init__(self, input_channels, squeeze_channels):
        super().__init__(input_channels, squeeze_channels)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.fc1 = nn.Conv1d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv1d(squeeze_channels, input_channels, 1)


class Grown(nn.Module):
    """A DenseNet layer's growth: its input and a block's output joined, torch.cat([x, f(x)], 1)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return torch.cat([x, self.block(x)], 1)


class Applied(nn.Module):
    """A function of x (an activation called in ``forward``) as a module."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


@st.composite
def torch_modules(draw, activations=MODULE_ACTIVATIONS, calls=CALLED_ACTIVATIONS, extras=True):
    """An nn.Sequential as people write one, on a (2, 8) input (16 features for a dense
    one: `example_for`): Linear, Conv1d or (with ``extras``) ConvTranspose1d layers (biases
    or not, a kernel, padding and groups; a transposed one's stride), a norm sometimes, an
    activation (a module of ``activations`` or a call of ``calls``), and with ``extras`` a
    GLU of a layer's units, an InstanceNorm or a GroupNorm, a squeeze-and-excitation, a pool
    sometimes, a layer's output concatenated to its input (`Grown`); a Linear head."""
    convolutional = draw(st.booleans(), label="conv")
    channels, length = 2, 8
    width = channels * length
    layers: list = []
    for _ in range(draw(st.integers(1, 3), label="hidden layers")):
        start, before = len(layers), (channels, length, width)
        out, bias = 2 * draw(st.integers(1, 2)), draw(st.booleans())
        glu = extras and draw(st.booleans(), label="glu")
        if convolutional:
            kernel, padding = draw(st.sampled_from([(1, 0), (3, 1), (3, 0)] if length >= 4 else [(1, 0), (3, 1)]))
            transposed = extras and draw(st.booleans(), label="transposed")
            glu = glu and not transposed  # (a GLU converts after a Linear or a convolution)
            groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0 and out % g == 0 and not
                                           (glu and g > 1)]))
            if transposed:  # an upsampling when its stride is 2 (at most once: the sizes stay small)
                stride = draw(st.sampled_from([1, 2] if length <= 8 else [1]))
                layers.append(nn.ConvTranspose1d(channels, out, kernel, stride, padding, bias=bias, groups=groups))
                length = (length - 1) * stride - 2 * padding + kernel
            else:
                layers.append(nn.Conv1d(channels, out, kernel, padding=padding, bias=bias, groups=groups))
                length = length + 2 * padding - kernel + 1
            channels = out
            if glu:
                layers.append(nn.GLU(dim=1))
                channels //= 2
            norm = draw(st.sampled_from(["none", "batchnorm", "instancenorm", "groupnorm"] if length > 1 and extras
                                        else ["none", "batchnorm"]))
            layers += {"none": [], "batchnorm": [nn.BatchNorm1d(channels)],
                       "instancenorm": [nn.InstanceNorm1d(channels, affine=draw(st.booleans()))],
                       "groupnorm": [nn.GroupNorm(1, channels)]}[norm]
            width = channels * length
        else:
            layers.append(nn.Linear(width, out, bias=bias))
            width = out
            if glu:
                layers.append(nn.GLU())
                width //= 2
            if width > 1 and draw(st.booleans(), label="layernorm"):
                layers.append(nn.LayerNorm(width))
        if calls and draw(st.booleans(), label="call"):
            layers.append(Applied(draw(st.sampled_from(calls))))
        else:
            layers.append(draw(st.sampled_from(activations))())
        if extras and convolutional and draw(st.booleans(), label="excited"):  # a squeeze-and-excitation
            layers.append(SqueezeExcitation1d(channels, max(1, channels // 2)))
        if extras and convolutional and length % 2 == 0 and length >= 4 and draw(st.booleans(), label="pool"):
            layers.append(draw(st.sampled_from([nn.MaxPool1d(2), nn.AvgPool1d(2), nn.AdaptiveMaxPool1d(length // 2),
                                                nn.AdaptiveAvgPool1d(length // 2)])))
            length //= 2
            width = channels * length
        if extras and length == before[1] and draw(st.booleans(), label="concatenated"):
            layers[start:] = [Grown(nn.Sequential(*layers[start:]))]  # cat(x, f(x)): a DenseNet layer
            channels, width = channels + before[0], width + before[2]
    if convolutional:
        layers.append(nn.Flatten())
    layers.append(nn.Linear(width, 2, bias=draw(st.booleans())))
    return nn.Sequential(*layers).double()



def normalizes_a_constant_group(module, x) -> bool:
    """Whether a norm inside ``module`` normalizes, on input ``x``, a group whose entries
    are equal (a channel a dead ReLU left constant): its output is then round-off of 0,
    and a kink after it decides by round-off's sign (docs/theory.md's degenerate
    constant group), where no two exact computations need agree."""
    found = []

    def seen(norm, args, _):
        y, axes = _groups(norm, args[0])
        found.append(bool((y.amax(axes) - y.amin(axes) <= 1e-12 * y.abs().amax(axes)).any()))

    norms = (nn.BatchNorm1d, nn.InstanceNorm1d, nn.GroupNorm, nn.LayerNorm)
    handles = [m.register_forward_hook(seen) for m in module.modules() if isinstance(m, norms)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return any(found)


def _groups(norm, y) -> tuple:
    """(y as ``norm`` groups it, the axes of one group)."""
    if isinstance(norm, nn.GroupNorm):
        return y.reshape(len(y), norm.num_groups, -1), (-1,)
    if isinstance(norm, nn.BatchNorm1d):  # each channel over the batch (and the positions)
        return y, tuple(a for a in range(y.ndim) if a != 1)
    if isinstance(norm, nn.LayerNorm):
        return y, tuple(range(-len(norm.normalized_shape), 0))
    return y, (-1,)  # InstanceNorm1d: each channel of each sample


def example_for(module, n: int, dtype=torch.float64):
    """``n`` Gaussian inputs for a `torch_modules` module: (n, 2, 8), or (n, 16) for a dense one."""
    x = torch.randn(n, 2, 8, dtype=dtype)
    first = module[0].block[0] if isinstance(module[0], Grown) else module[0]
    return x if isinstance(first, nn.Conv1d | nn.ConvTranspose1d) else x.flatten(1)


class Head(nn.Module):
    """ one head of self-attention """  # Karpathy's "Let's build GPT" (gpt.py): its forwards verbatim, its
    # globals (n_embd, block_size, dropout, vocab_size, n_head, n_layer, device) as arguments

    def __init__(self, head_size, n_embd=4, block_size=5, dropout=0.0):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        # input of size (batch, time-step, channels)
        # output of size (batch, time-step, head size)
        B, T, C = x.shape  # noqa: RUF059 (verbatim)
        k = self.key(x)   # (B,T,hs)
        q = self.query(x)  # (B,T,hs)
        # compute attention scores ("affinities")
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # (B, T, T)
        wei = F.softmax(wei, dim=-1)  # (B, T, T)
        wei = self.dropout(wei)
        # perform the weighted aggregation of the values
        v = self.value(x)  # (B,T,hs)
        out = wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
        return out


class MultiHeadAttention(nn.Module):
    """ multiple heads of self-attention in parallel """

    def __init__(self, num_heads, head_size, n_embd=4, block_size=5, dropout=0.0):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size, n_embd, block_size, dropout) for _ in range(num_heads)])
        self.proj = nn.Linear(head_size * num_heads, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        out = self.dropout(self.proj(out))
        return out


class FeedFoward(nn.Module):
    """ a simple linear layer followed by a non-linearity """

    def __init__(self, n_embd, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class LectureBlock(nn.Module):
    """ Transformer block: communication followed by computation """

    def __init__(self, n_embd, n_head, block_size=5, dropout=0.0):
        # n_embd: embedding dimension, n_head: the number of heads we'd like
        super().__init__()
        head_size = n_embd // n_head
        self.sa = MultiHeadAttention(n_head, head_size, n_embd, block_size, dropout)
        self.ffwd = FeedFoward(n_embd, dropout)
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        x = x + self.ffwd(self.ln2(x))
        return x


class GPTLanguageModel(nn.Module):
    """Karpathy's "Let's build GPT" model (gpt.py): its forward verbatim, returning (logits,
    loss), the loss None without targets; its weights initialised as it does."""

    def __init__(self, vocab_size=8, n_embd=4, block_size=5, n_head=2, n_layer=1, dropout=0.0):
        super().__init__()
        # each token directly reads off the logits for the next token from a lookup table
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[LectureBlock(n_embd, n_head, block_size, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)  # final layer norm
        self.lm_head = nn.Linear(n_embd, vocab_size)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        device = idx.device  # (a global in gpt.py)

        # idx and targets are both (B,T) tensor of integers
        tok_emb = self.token_embedding_table(idx)  # (B,T,C)
        pos_emb = self.position_embedding_table(torch.arange(T, device=device))  # (T,C)
        x = tok_emb + pos_emb  # (B,T,C)
        x = self.blocks(x)  # (B,T,C)
        x = self.ln_f(x)  # (B,T,C)
        logits = self.lm_head(x)  # (B,T,vocab_size)

        if targets is None:
            loss = None
        else:
            B, T, C = logits.shape
            logits = logits.view(B * T, C)
            targets = targets.view(B * T)
            loss = F.cross_entropy(logits, targets)

        return logits, loss


class TimmAttention(nn.Module):
    """timm's vision transformer Attention (timm/layers/attention.py), its forward verbatim:
    q, k, v from one Linear reshaped (B, N, 3, heads, head_dim) and permuted, unbound; its
    fused path (F.scaled_dot_product_attention) or its manual one (q scaled, then q @ k^T)."""

    def __init__(self, dim, num_heads=2, qkv_bias=False, attn_drop=0.0, proj_drop=0.0, fused_attn=True):
        super().__init__()
        assert dim % num_heads == 0, "dim should be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)

        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v,
                dropout_p=self.attn_drop.p if self.training else 0.,
            )
        else:
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = attn @ v

        x = x.transpose(1, 2).reshape(B, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class TimmBlock(nn.Module):
    """timm's vision transformer Block and Mlp (timm/models/vision_transformer.py,
    timm/layers/mlp.py), their forwards verbatim, at their defaults (no layer scale, no
    drop path: Identity)."""

    def __init__(self, dim, num_heads=2, mlp_ratio=2.0, qkv_bias=False, fused_attn=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TimmAttention(dim, num_heads, qkv_bias, fused_attn=fused_attn)
        self.ls1 = nn.Identity()
        self.drop_path1 = nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Module()
        hidden = int(dim * mlp_ratio)
        self.mlp.fc1, self.mlp.act, self.mlp.drop1 = nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0)
        self.mlp.norm, self.mlp.fc2, self.mlp.drop2 = nn.Identity(), nn.Linear(hidden, dim), nn.Dropout(0.0)
        self.ls2 = nn.Identity()
        self.drop_path2 = nn.Identity()

    def _mlp(self, x):  # timm's Mlp.forward
        x = self.mlp.fc1(x)
        x = self.mlp.act(x)
        x = self.mlp.drop1(x)
        x = self.mlp.norm(x)
        x = self.mlp.fc2(x)
        x = self.mlp.drop2(x)
        return x

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        x = x + self.drop_path2(self.ls2(self._mlp(self.norm2(x))))
        return x


class TimmViT(nn.Module):
    """A timm-style vision transformer: patch embedding (a convolution, flatten(2).transpose(1,
    2)), class token, position embedding, timm's Blocks, the final norm and the class
    token's head."""

    def __init__(self, image=4, patch=2, d=4, depth=1, classes=3, qkv_bias=False, fused_attn=True):
        super().__init__()
        self.proj = nn.Conv2d(3, d, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, d) * 0.02)
        self.blocks = nn.Sequential(*[TimmBlock(d, qkv_bias=qkv_bias, fused_attn=fused_attn) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)  # timm's PatchEmbed (NCHW -> NLC)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class NewGELU(nn.Module):
    """
    Implementation of the GELU activation function currently in Google BERT repo (identical to OpenAI GPT).
    Reference: Gaussian Error Linear Units (GELU) paper: https://arxiv.org/abs/1606.08415
    """  # minGPT's (mingpt/model.py), verbatim

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class QuickGELU(nn.Module):
    # NOTE This is slower than nn.GELU or nn.SiLU and uses more GPU memory
    def forward(self, x: torch.Tensor):
        return x * torch.sigmoid(1.702 * x)  # OpenCLIP's (open_clip/transformer.py), verbatim


class ResidualAttentionBlock(nn.Module):
    """OpenCLIP's (open_clip/transformer.py), without its optional layer scales and mask."""

    def __init__(self, d_model: int, n_head: int, mlp_ratio: float = 4.0, act_layer=QuickGELU):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
        self.ln_2 = nn.LayerNorm(d_model)
        mlp_width = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, mlp_width)),
            ("gelu", act_layer()),
            ("c_proj", nn.Linear(mlp_width, d_model))
        ]))

    def attention(self, q_x):
        return self.attn(q_x, q_x, q_x, need_weights=False)[0]

    def forward(self, q_x):
        x = q_x + self.attention(q_x=self.ln_1(q_x))
        x = x + self.mlp(self.ln_2(x))
        return x


class OpenClipVision(nn.Module):
    """OpenCLIP's VisionTransformer at a small width, its forward as written there (OpenAI's
    CLIP weights use QuickGELU): conv patches, a class token, positions, ln_pre, the blocks,
    ln_post of the class token and its projection, a parameter used by matmul."""

    def __init__(self, image=4, patch=2, width=8, heads=2, layers=2, output_dim=3):
        super().__init__()
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((image // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)  # shape = [*, width, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1)  # shape = [*, width, grid ** 2]
        x = x.permute(0, 2, 1)  # shape = [*, grid ** 2, width]
        x = torch.cat([self.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = self.transformer(x)
        pooled = self.ln_post(x[:, 0])
        return pooled @ self.proj


WRITTEN_ACTIVATIONS = {  # activations as people write them out: formula -> the flowlaws activation it is
    "gelu_tanh": NewGELU(),
    "swish(1.702)": QuickGELU(),
    "swish(2)": Applied(lambda x: x * torch.sigmoid(2 * x)),
    "gelu": Applied(lambda x: x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))),
    "silu": Applied(lambda x: x * torch.sigmoid(x)),
    "mish": Applied(lambda x: x * torch.tanh(F.softplus(x))),
    "softplus": Applied(lambda x: torch.log1p(torch.exp(x))),
}


REFERENCE = {
    "vit": (ViT, lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
    "mlp-mixer": (Mixer, lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
    "convnext": (lambda: ConvNeXt(kernel=3, layer_scale=0.5), lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
    "nanogpt": (lambda: NanoGPT(dropout=0.0, tied=False), lambda: torch.randint(0, 8, (4, 5))),
    "nanogpt-no-bias": (lambda: NanoGPT(dropout=0.0, tied=False, bias=False, n_layer=2),
                        lambda: torch.randint(0, 8, (4, 5))),
    "nanogpt-manual-attention": (lambda: NanoGPT(dropout=0.0, tied=False, flash=False),
                                 lambda: torch.randint(0, 8, (4, 5))),
    "llama": (lambda: Llama(d=8, heads=2), lambda: torch.randn(4, 5, 8, dtype=torch.float64)),  # rotate_half
    "llama-adjacent-pairs": (lambda: Llama(d=8, heads=2, pairs=True),
                             lambda: torch.randn(4, 5, 8, dtype=torch.float64)),
    "llama-gqa": (lambda: Llama(d=8, heads=2, kv_heads=1), lambda: torch.randn(4, 5, 8, dtype=torch.float64)),
    # its position table in float64, so that torch computes what flowlaws does to round-off
    "tutorial-transformer": (lambda: TutorialTransformer(table=torch.float64), lambda: torch.randint(0, 8, (4, 5))),
    "gpt-from-an-encoder": (EncoderGPT, lambda: torch.randint(0, 8, (4, 5))),
    "lets-build-gpt": (GPTLanguageModel, lambda: torch.randint(0, 8, (4, 5))),  # returns (logits, None)
    "timm-vit": (TimmViT, lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),  # qkv unbound, out_bias
    "timm-vit-manual-attention": (lambda: TimmViT(qkv_bias=True, fused_attn=False),
                                  lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
    # QuickGELU, the class token viewed, the projection a parameter used by matmul
    "open-clip-vision": (OpenClipVision, lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
}


class WrittenAttention(nn.Module):
    """Self-attention written by hand, the ways people write it: the scale a product or a
    quotient, k transposed by ``transpose(-2, -1)``, ``transpose(2, 3)`` or ``.mT``, a
    causal mask by ``masked_fill`` of a buffer or a float mask added (or none), the softmax
    as F.softmax, torch.softmax, a method or an nn.Softmax, a dropout or none."""

    def __init__(self, d=4, heads=2, T=5, scale="product", transpose="-2,-1", mask="filled", softmax="function",
                 dropout=True, dim=-1):
        super().__init__()
        self.dim = dim  # the softmax's (-1: over the keys)
        self.attend = nn.Softmax(dim=dim)
        self.c_attn, self.c_proj, self.head = nn.Linear(d, 3 * d), nn.Linear(d, d), nn.Linear(d, 2)
        self.heads, self.scale, self.transpose, self.mask, self.softmax = heads, scale, transpose, mask, softmax
        self.drop = nn.Dropout(0.0) if dropout else nn.Identity()
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        self.register_buffer("tril", ~future if mask != "diagonal" else ~torch.eye(T, dtype=torch.bool))
        self.register_buffer("additive", torch.zeros(T, T).masked_fill(future, float("-inf")))

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, 2)
        q, k, v = (p.view(n, t, self.heads, d // self.heads).transpose(1, 2) for p in (q, k, v))
        kt = {"-2,-1": lambda: k.transpose(-2, -1), "2,3": lambda: k.transpose(2, 3), "mT": lambda: k.mT}
        att = q @ kt[self.transpose]()
        scales = {"product": lambda: att * k.size(-1) ** -0.5, "quotient": lambda: att / math.sqrt(d // self.heads),
                  "width": lambda: att / (d // self.heads)}
        att = scales[self.scale]()
        if self.mask in ("filled", "diagonal"):
            att = att.masked_fill(self.tril[:t, :t] == 0, float("-inf"))
        elif self.mask == "added":
            att = att + self.additive[:t, :t]
        if self.softmax == "function":
            att = F.softmax(att, dim=self.dim)
        elif self.softmax == "module":  # lucidrains' vit-pytorch: self.attend = nn.Softmax(dim=-1)
            att = self.attend(att)
        elif self.softmax == "method":
            att = att.softmax(self.dim)
        else:
            att = torch.softmax(att, dim=self.dim)
        y = (self.drop(att) @ v).transpose(1, 2).reshape(n, t, d)
        return self.head(self.c_proj(y).mean(1))


class ThreeProjections(nn.Module):
    """Self-attention with three projections (as many Hugging Face models write it, less RoPE)."""

    def __init__(self, d=4, heads=2, leak=False, mask=False, kv_heads=None, scale=None):
        super().__init__()
        self.scale = scale  # F.scaled_dot_product_attention's (None: 1/sqrt(width))
        kv = d // heads * (kv_heads or heads)
        self.q, self.k, self.v, self.o = nn.Linear(d, d), nn.Linear(d, kv), nn.Linear(d, kv), nn.Linear(d, d)
        self.heads, self.kv_heads, self.leak = heads, kv_heads or heads, leak
        self.register_buffer("allowed", torch.ones(5, 5, dtype=torch.bool) if mask else None)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = (p(x).view(n, t, heads, d // self.heads).transpose(1, 2)
                   for p, heads in ((self.q, self.heads), (self.k, self.kv_heads), (self.v, self.kv_heads)))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.allowed, enable_gqa=self.kv_heads != self.heads,
                                           scale=self.scale)
        y = self.o(y.transpose(1, 2).reshape(n, t, d))
        return self.head((y + q.transpose(1, 2).reshape(n, t, d) if self.leak else y).mean(1))


class Forecaster(nn.Module):
    """A sequence-to-sequence regressor as people write one around nn.Transformer: the source
    and the target projected to the model's width, a head on the decoder's output."""

    def __init__(self, features=3, d=8, out=2):
        super().__init__()
        self.src_in, self.tgt_in = nn.Linear(features, d), nn.Linear(features, d)
        self.transformer = nn.Transformer(d, 2, 1, 1, 2 * d, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, out)

    def forward(self, src, tgt):
        return self.head(self.transformer(self.src_in(src), self.tgt_in(tgt)))


class Captioner(nn.Module):
    """A decoder stack reading features of its own making (a projection and a ReLU of the
    second input): the captioning head of an image model, its encoder's output given."""

    def __init__(self, features=4, d=4, layers=1):
        super().__init__()
        self.embed, self.memory_in = nn.Linear(features, d), nn.Linear(features, d)
        layer = nn.TransformerDecoderLayer(d, 2, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(d))
        self.head = nn.Linear(d, features)

    def forward(self, tgt, features):
        return self.head(self.decoder(self.embed(tgt), torch.relu(self.memory_in(features))))


class Translator(nn.Module):
    """Token ids of one vocabulary on both sides: two embeddings, nn.Transformer (with its
    dropout), a head over the vocabulary."""

    def __init__(self, vocabulary=7, d=8, dropout=0.1):
        super().__init__()
        self.src_emb, self.tgt_emb = nn.Embedding(vocabulary, d), nn.Embedding(vocabulary, d)
        self.transformer = nn.Transformer(d, 2, 1, 1, 2 * d, dropout=dropout, batch_first=True)
        self.head = nn.Linear(d, vocabulary)

    def forward(self, src, tgt):
        return self.head(self.transformer(self.src_emb(src), self.tgt_emb(tgt)))


class SkippedDecoder(nn.Module):
    """A decoder layer with a skip around it: x + decoder(x, memory), the memory a projection."""

    def __init__(self, d=4):
        super().__init__()
        self.embed, self.memory_in = nn.Linear(d, d), nn.Linear(d, d)
        self.decoder = nn.TransformerDecoderLayer(d, 2, 2 * d, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, 2)

    def forward(self, tgt, memory):
        x = self.embed(tgt)
        return self.head(x + self.decoder(x, self.memory_in(memory)))


class TutorialTranslator(nn.Module):
    """The PyTorch translation tutorial's Seq2SeqTransformer (sequence first, token ids of one
    vocabulary), its causal mask made inside from the target's length rather than passed in,
    and no padding masks."""

    def __init__(self, vocabulary=7, d=8, dropout=0.0):
        super().__init__()
        self.src_tok_emb, self.tgt_tok_emb = nn.Embedding(vocabulary, d), nn.Embedding(vocabulary, d)
        self.transformer = nn.Transformer(d, 2, 1, 1, 2 * d, dropout=dropout)
        self.generator = nn.Linear(d, vocabulary)

    def forward(self, src, trg):
        mask = nn.Transformer.generate_square_subsequent_mask(trg.size(0))
        return self.generator(self.transformer(self.src_tok_emb(src), self.tgt_tok_emb(trg), tgt_mask=mask))


# modules of two inputs around a Transformer decoder: (make, example inputs)
ENCODER_DECODERS = {
    "forecaster": (Forecaster, lambda: (torch.randn(4, 5, 3, dtype=torch.float64),
                                        torch.randn(4, 3, 3, dtype=torch.float64))),
    "captioner": (Captioner, lambda: (torch.randn(4, 3, 4, dtype=torch.float64),
                                      torch.randn(4, 6, 4, dtype=torch.float64))),
    "decoder-with-a-skip": (SkippedDecoder, lambda: (torch.randn(3, 2, 4, dtype=torch.float64),
                                                    torch.randn(3, 5, 4, dtype=torch.float64))),
    "tutorial-translator": (TutorialTranslator, lambda: (torch.randint(0, 7, (5, 3)), torch.randint(0, 7, (4, 3)))),
    "translator": (lambda: Translator(dropout=0.0), lambda: (torch.randint(0, 7, (4, 5)), torch.randint(0, 7, (4, 3)))),
}
