"""flowlaws.torch.conversion against real torch (CPU): what converts, to which spec, with
torch's value and gradient; what does not, in one line."""

import inspect

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from torch_models import (  # noqa: E402
    ENCODER_DECODERS,
    GPT,
    REFERENCE,
    WRITTEN_ACTIVATIONS,
    Applied,
    BagOfEmbeddings,
    BasicBlock,
    ConformerConvolution,
    ConvNeXt,
    Decoder,
    DenseNet,
    Encoder,
    EncoderGPT,
    Excited,
    ExcitedBlock,
    FeaturePyramid,
    Functional,
    FusedSwiGLU,
    GPTLanguageModel,
    Head,
    Inception,
    LectureBlock,
    Llama,
    LlamaAttention,
    LlamaRMSNorm,
    MetaRMSNorm,
    Mixer,
    MobileNetV2,
    MultiHeadAttention,
    NanoGPT,
    Reshaped,
    SequenceFirst,
    SquaredReLU,
    SwiGLU,
    ThreeProjections,
    TimmAttention,
    TransformerModel,
    TutorialTransformer,
    UNet,
    ViT,
    WrittenAttention,
    example_for,
    normalizes_a_constant_group,
    torch_modules,
)

from flowlaws.discover import discover  # noqa: E402
from flowlaws.engine import value_and_grad  # noqa: E402
from flowlaws.errors import InvalidArgument  # noqa: E402
from flowlaws.invariants import laws  # noqa: E402
from flowlaws.losses import CrossEntropy, Square  # noqa: E402
from flowlaws.models import parse  # noqa: E402
from flowlaws.torch import Converted, discover_of, from_torch, laws_of, one_hot  # noqa: E402


class ResBlock(nn.Module):
    """ResNet-style: x + conv(relu(conv(x))), then a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 3, 3, padding=1)
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 3, padding=1, bias=False)
        self.head = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.b(torch.relu(self.a(x)))
        return self.head(torch.flatten(torch.relu(x), 1))


class Transformer(nn.Module):
    """Pre-LayerNorm self-attention block on (N, T, d), then a head."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(6)
        self.attention = nn.MultiheadAttention(6, 2, bias=False, batch_first=True)
        self.head = nn.Linear(5 * 6, 3)

    def forward(self, x):
        h = self.norm(x)
        y, _ = self.attention(h, h, h)
        return self.head((x + y).flatten(1))


def _vgg():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(6 * 2 * 2, 5), nn.ReLU(), nn.Linear(5, 3))


class KeptMean(nn.Module):
    """A global average pool kept 4-d and flattened after, as timm's heads write it."""

    def __init__(self, squeeze=False):
        super().__init__()
        self.squeeze = squeeze
        self.conv, self.fc = nn.Conv2d(2, 4, 3, padding=1), nn.Linear(4, 2)

    def forward(self, x):
        pooled = torch.relu(self.conv(x)).mean((2, 3), keepdim=True)
        return self.fc(pooled.squeeze(-1).squeeze(-1) if self.squeeze else pooled.view(pooled.size(0), -1))


class Arithmetic(nn.Module):
    """relu(a(x)) - b(x), negated, summed over the positions of (N, T, d)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(3, 4), nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head((-(torch.relu(self.a(x)) - self.b(x))).sum(1))


MODELS = {
    "mlp": (lambda: nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 5, bias=False), nn.Tanh(),
                                  nn.Linear(5, 3)), (7, 4)),
    "activations": (lambda: nn.Sequential(nn.Linear(4, 5), nn.GELU(), nn.Linear(5, 5), nn.ELU(), nn.Linear(5, 5),
                                          nn.SiLU(), nn.Linear(5, 5), nn.Softplus(), nn.Linear(5, 5), nn.Sigmoid(),
                                          nn.Linear(5, 5), nn.PReLU(init=0.3), nn.Identity(), nn.Linear(5, 2)),
                    (6, 4)),
    "vgg": (_vgg, (6, 3, 8, 8)),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(2, 4, 3, stride=2, padding=1), nn.BatchNorm1d(4, affine=False),
                                     nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(16, 2)), (5, 2, 16)),
    "resnet": (ResBlock, (4, 2, 4, 4)),
    "transformer": (Transformer, (4, 5, 6)),
    "layernorm": (lambda: nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 2)), (5, 4)),
    "resnet_downsample": (BasicBlock, (4, 2, 6, 6)),
    "swiglu": (SwiGLU, (3, 5, 4)),
    "swiglu-fused": (FusedSwiGLU, (3, 5, 4)),
    "swiglu-split": (lambda: FusedSwiGLU(bias=False, split=True), (3, 5, 4)),
    "groupnorm": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
                                        nn.Conv2d(4, 4, 3, dilation=2, groups=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                        nn.Flatten(), nn.Linear(4, 2)), (4, 2, 6, 6)),
    "position_wise": (lambda: nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 4), nn.RMSNorm(4),
                                            nn.Flatten(), nn.Linear(20, 2)), (3, 5, 4)),
    "functional": (Functional, (3, 2, 6, 6)),
    "arithmetic": (Arithmetic, (3, 5, 3)),
    "kept_mean": (KeptMean, (3, 2, 4, 4)),
    "pools": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                    nn.MaxPool2d(3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                                    nn.AvgPool2d((3, 2), stride=(2, 1), padding=(1, 0)), nn.Flatten(),
                                    nn.Linear(4 * 2 * 3, 2)), (3, 2, 8, 8)),
    "rectangular": (lambda: nn.Sequential(nn.Conv2d(2, 4, (3, 1), stride=(1, 2), padding=(1, 0)), nn.ReLU(),
                                          nn.Conv2d(4, 3, (1, 3), dilation=(1, 2), padding="same", bias=False),
                                          nn.ReLU(), nn.Conv2d(3, 2, (2, 3), padding="valid"),
                                          nn.MaxPool2d((2, 1)), nn.Flatten(), nn.Linear(2 * 2 * 1, 2)), (3, 2, 5, 6)),
    "mobile_activations": (lambda: nn.Sequential(nn.Linear(4, 5), nn.Mish(), nn.Linear(5, 5), nn.ReLU6(),
                                                 nn.Linear(5, 5), nn.Hardswish(), nn.Linear(5, 5),
                                                 nn.Hardtanh(0.0, 6.0), nn.Linear(5, 2)), (6, 4)),
    "squared_relu": (lambda: nn.Sequential(SquaredReLU(), nn.Flatten(), nn.Linear(20, 2)), (3, 5, 4)),
    "selu_celu_clamp": (lambda: _linears(nn.SELU(), nn.CELU(), lambda x: x.clamp(min=0), lambda x: torch.clamp(x, 0, 6),
                                lambda x: F.hardtanh(x, 0.0, 6.0), lambda x: torch.relu(x) ** 3), (6, 4)),
    "adaptive_pools": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.InstanceNorm2d(4, affine=True),
                                             nn.ReLU(), nn.AdaptiveMaxPool2d((2, 3)), nn.Conv2d(4, 3, 1),
                                             nn.InstanceNorm2d(3), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 3)),
                                             nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(3, 2)), (3, 2, 6, 6)),
    "instancenorm1d": (lambda: nn.Sequential(nn.Conv1d(2, 3, 3), nn.InstanceNorm1d(3, affine=True), nn.ReLU(),
                                             nn.Flatten(), nn.Linear(3 * 6, 2)), (3, 2, 8)),
    "glu": (lambda: _GatedLinearUnits(), (6, 4)),
    "conformer_convolution": (ConformerConvolution, (4, 4, 6)),
    "mobilenet_v2": (lambda: MobileNetV2(dropout=0.0), (4, 3, 8, 8)),  # torch's mask is its own draw
    "mobilenet_v3_head": (lambda: MobileNetV2(v3_head=True, dropout=0.0), (4, 3, 8, 8)),
    "conv_transpose": (Decoder, (4, 2, 2, 2)),
    "feature_pyramid": (FeaturePyramid, (4, 2, 4, 4)),
    "unet": (UNet, (4, 1, 4, 4)),
    "densenet": (DenseNet, (4, 1, 5)),
    "inception": (Inception, (4, 2, 4)),
    "conv_transpose1d": (lambda: nn.Sequential(nn.ConvTranspose1d(2, 4, 3, stride=2, padding=1, output_padding=1,
                                                                   dilation=2), nn.GELU(), nn.Flatten(),
                                               nn.Linear(4 * 12, 2)), (3, 2, 5)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_converted_models_value_and_gradient_equal_torch_to_1e12(name):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    module = make().double()
    x = torch.randn(*shape, dtype=torch.float64)
    model, params = from_torch(module, x)
    out = module(x)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(dim=1).mean()
    torch_grads = torch.autograd.grad(loss, [p for p in module.parameters() if p.requires_grad
                                             and not (isinstance(p, nn.Parameter) and p.numel() == 1)])
    value, grads = value_and_grad(model, Square(), params, x.numpy(), y.detach().numpy())
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    ours = np.concatenate([g.ravel() for g in grads])
    theirs = np.concatenate([_ours_layout(module, name, g, x) for g in [torch_grads]])
    assert ours.shape == theirs.shape
    assert np.max(np.abs(ours - theirs)) <= 1e-12 * np.max(np.abs(theirs))


def _ours_layout(module, name, grads, x=None):
    """torch's gradients in flowlaws' parameter layout (attention heads split and transposed;
    a GLU's or a fused SwiGLU's halves as the converter reads any tensor of its parameters)."""
    if name in ("glu", "conformer_convolution", "swiglu-fused", "swiglu-split"):
        given = {id(p): g for p, g in zip(module.parameters(), grads, strict=True)}
        return np.concatenate([g.ravel() for g in Converted.of(module, x).read(lambda t: given[id(t)])])
    if name != "transformer":
        return np.concatenate([g.detach().numpy().ravel() for g in grads])
    norm_w, norm_b, in_proj, out_proj, head_w, head_b = (g.detach().numpy() for g in grads)
    d, heads = 6, 2
    width = d // heads
    parts = [norm_w, norm_b]
    for h in range(heads):
        rows = slice(h * width, (h + 1) * width)
        parts += [in_proj[:d][rows].T, in_proj[d:2 * d][rows].T, in_proj[2 * d:][rows].T, out_proj[:, rows].T]
    return np.concatenate([p.ravel() for p in [*parts, head_w, head_b]])


def test_the_converted_specs_read_as_the_modules():
    torch.manual_seed(0)
    assert from_torch(MODELS["resnet"][0](), torch.randn(2, 2, 4, 4))[0].spec == (
        "seq:2x4x4:conv2d(3,3,padding=1,bias),relu,residual[conv2d(4,3,padding=1,bias),relu,conv2d(3,3,padding=1)],"
        "relu,flatten,dense(2,bias)")
    assert from_torch(Transformer(), torch.randn(2, 5, 6))[0].spec == (
        "seq:5x6:residual[layernorm(affine,eps=1e-05),attention(heads=2,dk=3,dv=3)],flatten,dense(3,bias)")


def test_functional_calls_and_methods_convert_as_their_modules_do():
    assert from_torch(Functional(p=0.25), torch.randn(2, 2, 6, 6))[0].spec == (
        "seq:2x6x6:conv2d(4,3,padding=1,bias),relu,maxpool2d(2),conv2d(4,1,bias),leaky_relu(0.2),prelu(0.5,0.5),"
        "dropout(0.25),dropout(0.25),mean,flatten,dense(2,bias),prelu(0.25,0.25)")
    # dropout called with training=False computes nothing
    assert "dropout(0)" in from_torch(Functional(p=0.25).eval(), torch.randn(2, 2, 6, 6))[0].spec
    for name in ("relu6", "hardswish", "hardsigmoid", "mish"):
        assert from_torch(_linears(getattr(F, name), inputs=3, width=4),
                          torch.randn(5, 3))[0].spec == f"mlp:3-4-2:{name}:bias"


def _linears(*activations, inputs=4, width=5):
    """Linear layers of ``width`` with an activation after each (a module, or a function of
    x as `Applied`), then a Linear head to 2."""
    layers = []
    for k, activation in enumerate(activations):
        layers += [nn.Linear(width if k else inputs, width),
                   activation if isinstance(activation, nn.Module) else Applied(activation)]
    return nn.Sequential(*layers, nn.Linear(width, 2))


class _GatedLinearUnits(nn.Module):
    """Dauphin et al.'s gated linear units: F.glu of a Linear's output, then nn.GLU of another's."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.glu, self.out = nn.Linear(4, 8), nn.Linear(4, 6), nn.GLU(), nn.Linear(3, 2)

    def forward(self, x):
        return self.out(self.glu(self.b(F.glu(self.a(x), dim=-1))))


def test_a_difference_a_negation_and_a_sum_over_positions_convert_as_linear_maps():
    assert from_torch(Arithmetic(), torch.randn(2, 5, 3))[0].spec == (
        "seq:5x3:residual[dense(4,bias),relu | dense(4,bias),prelu(-1,-1)],prelu(-1,-1),mean(last),prelu(5,5),"
        "dense(2,bias)")


def test_an_example_input_the_module_cannot_take_is_a_one_line_error_and_prints_nothing(capfd):
    with pytest.raises(InvalidArgument, match=r"Sequential cannot run on example_input of shape \(4, 8\) "
                                              r"\(RuntimeError: mat1 and mat2") as error:
        Converted.of(nn.Sequential(nn.Linear(3, 4)), torch.zeros(4, 8))
    assert "\n" not in str(error.value)
    assert capfd.readouterr() == ("", "")


def test_a_module_torch_fx_cannot_trace_is_a_one_line_error_naming_why():
    class Branching(nn.Module):  # control flow on the data
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x if x.sum() > 0 else -x)

    with pytest.raises(InvalidArgument, match=r"torch.fx cannot trace Branching \(symbolically traced") as error:
        Converted.of(Branching(), torch.randn(2, 4))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("forward", [lambda z: torch.log_softmax(z, 0), lambda z: torch.softmax(z, -1) * 2])
def test_a_softmax_converts_only_as_the_last_step_over_the_classes(forward):
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x):
            return forward(self.fc(x))

    with pytest.raises(InvalidArgument, match="converts as the module's last step, over the last axis"):
        Converted.of(Head(), torch.randn(5, 3))


def test_a_mean_with_keepdim_converts_where_a_flatten_drops_the_kept_axes_and_only_there():
    assert from_torch(KeptMean(), torch.randn(2, 2, 4, 4))[0].spec == (
        "seq:2x4x4:conv2d(4,3,padding=1,bias),relu,mean,flatten,dense(2,bias)")
    with pytest.raises(InvalidArgument, match="keepdim=True converts only when flattened right after"):
        from_torch(KeptMean(squeeze=True), torch.randn(2, 2, 4, 4))


def test_a_rectangular_kernel_and_pool_convert_with_their_values_per_axis():
    module = MODELS["rectangular"][0]()
    assert from_torch(module, torch.randn(2, 2, 5, 6))[0].spec == (
        "seq:2x5x6:conv2d(4,3x1,stride=1x2,padding=1x0,bias),relu,conv2d(3,1x3,padding=0x2,dilation=1x2),relu,"
        "conv2d(2,2x3,bias),maxpool2d(2x1),flatten,dense(2,bias)")


@pytest.mark.parametrize(("module", "fragment"), [
    (nn.Sequential(nn.Linear(3, 8), nn.Softplus(beta=2.0)), r"\(Softplus\) is not supported"),
    (nn.Sequential(nn.Conv2d(3, 4, 1), nn.AvgPool2d(2, divisor_override=1)), r"no divisor_override"),
    (nn.Sequential(nn.Conv2d(3, 4, (2, 3), padding="same")), r"0 \(Conv2d\) is not supported \(padding='same' with "
                                                              "an even kernel"),
    (nn.Sequential(nn.Linear(3, 4), nn.Embedding(4, 2), nn.Linear(4, 2)),
     r"1 \(Embedding\) is not supported \(an Embedding must read the module's input"),
    (nn.Sequential(nn.Conv1d(3, 4, 3, padding_mode="reflect", padding=1)),
     r"0 \(Conv1d\) is not supported \(padding modes other than zeros"),
    (nn.Sequential(nn.MultiheadAttention(3, 1, batch_first=True, add_bias_kv=True)), r"not supported"),
    (nn.Sequential(nn.Conv1d(3, 4, 1), nn.AdaptiveMaxPool1d(3)), r"\(AdaptiveMaxPool1d\) is not supported \(only an "
                                                                 "output size dividing the input's"),
    (nn.Sequential(nn.Conv1d(3, 4, 1), nn.ELU(0.5)), r"\(ELU\) is not supported \(alpha=0.5; flowlaws' elu has"),
    (nn.Sequential(nn.Conv1d(3, 4, 1), nn.Hardtanh()), r"\(-1.0, 1.0\); flowlaws converts Hardtanh\(0, 6\), a ReLU6"),
    (nn.Sequential(nn.Conv1d(3, 4, 1), nn.Upsample(scale_factor=2, mode="linear")),
     r"1 \(Upsample\) is not supported \(mode 'linear', factors \(2.0,\) on shape \(4, 4, 8\); flowlaws converts "
     "nearest upsampling"),
    (nn.Sequential(nn.Conv1d(3, 4, 1), nn.Upsample(scale_factor=1.5)), r"factors \(1.5,\)"),
])
def test_an_unsupported_module_is_one_line_naming_its_path_and_type(module, fragment):
    with pytest.raises(InvalidArgument, match=fragment) as error:
        from_torch(module, torch.zeros(4, 3, 8))
    assert "\n" not in str(error.value)


class _CumulativeInside(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 1)  # no flowlaws layer


class _Cumulative(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear, self.inner = nn.Linear(3, 4), _CumulativeInside()

    def forward(self, x):
        return self.inner(self.linear(x))


def test_an_unsupported_call_is_one_line_led_by_where_the_module_makes_it():
    """Compiler style, path:line of the innermost frame of the module's own code (here a
    submodule's forward), then the node and what converts."""
    line = inspect.getsourcelines(_CumulativeInside.forward)[1] + 1
    with pytest.raises(InvalidArgument) as error:
        from_torch(_Cumulative(), torch.randn(4, 3))
    message = str(error.value)
    assert message.startswith(f"{__file__}:{line}: cumsum: call_function cumsum is not supported; flowlaws converts")
    assert "\n" not in message


class _SizedUpsampling(nn.Module):
    """A transposed convolution told its output size in the call (torch picks the output_padding)."""

    def __init__(self):
        super().__init__()
        self.up, self.head = nn.ConvTranspose1d(3, 2, 3, stride=2, padding=1), nn.Linear(32, 1)

    def forward(self, x):
        return self.head(self.up(x, output_size=[16]).flatten(1))


def test_a_decoder_of_transposed_convolutions_converts_in_torchs_layout_and_an_output_size_is_refused():
    torch.manual_seed(0)
    model, params = from_torch(Decoder(), torch.randn(2, 2, 2, 2))
    assert model.spec == ("seq:2x2x2:conv_transpose2d(4,2,stride=2),batchnorm(affine,eps=1e-05),relu,"
                          "conv_transpose2d(4,3,stride=2,padding=1,bias,groups=2,output_padding=1),relu,flatten,"
                          "dense(3,bias)")
    assert params[0].shape == (2, 4, 2, 2) and params[3].shape == (4, 2, 3, 3)  # (C_in, C / G, K...), as torch's
    with pytest.raises(InvalidArgument, match=r"up \(ConvTranspose1d\) is not supported \(an output_size in the call; "
                                              r"give output_padding instead\)") as error:
        from_torch(_SizedUpsampling(), torch.zeros(4, 3, 8))
    assert "\n" not in str(error.value)


def test_the_models_people_train_convert_to_graph_specs():
    torch.manual_seed(0)
    assert from_torch(BasicBlock(), torch.randn(2, 2, 6, 6))[0].spec == (
        "seq:2x6x6:residual[conv2d(4,3,stride=2,padding=1),batchnorm(affine,eps=1e-05),relu,conv2d(4,3,padding=1),"
        "batchnorm(affine,eps=1e-05) | conv2d(4,1,stride=2),batchnorm(affine,eps=1e-05)],relu,mean,flatten,"
        "dense(3,bias)")
    assert from_torch(SwiGLU(), torch.randn(2, 5, 4))[0].spec == (
        "seq:5x4:gated[dense(6),silu | dense(6)],dense(4),mean(last),dense(2,bias)")
    assert from_torch(FusedSwiGLU(), torch.randn(2, 5, 4))[0].spec == (  # DINOv2's w12(x).chunk(2, dim=-1)
        "seq:5x4:residual[gated[dense(6,bias),silu | dense(6,bias)],dense(4,bias)],mean(last),dense(2,bias)")
    dropout = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.25), nn.Linear(4, 2))
    assert from_torch(dropout, torch.randn(4, 3))[0].spec == "seq:3:dense(4,bias),relu,dropout(0.25),dense(2,bias)"


def test_a_batchnorm_of_a_column_constant_over_the_batch_converts():
    # a dead unit feeds the BatchNorm a constant: its output is round-off of the mean over
    # sqrt(eps), which torch and flowlaws round differently; the check allows both sides'
    # round-off (the forward magnitude sweep), and still catches a wrong conversion
    net = nn.Sequential(nn.Linear(3, 1), nn.BatchNorm1d(1), nn.Linear(1, 2, bias=False)).double()
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.fill_(0.1)
    x = torch.randn(7, 3, dtype=torch.float64)
    assert from_torch(net, x)[0].spec == "seq:3:dense(1,bias),batchnorm(affine,eps=1e-05),dense(2)"


def test_a_conversion_that_computes_something_else_is_refused(monkeypatch):
    import flowlaws.torch.conversion as conversion
    from flowlaws.models import Activation

    monkeypatch.setattr(conversion, "_activation", lambda module: Activation("relu") if isinstance(module, nn.Tanh)
                        else None)
    with pytest.raises(InvalidArgument, match="does not reproduce the module's output"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double(), torch.randn(6, 3))


def test_data_dependent_control_flow_is_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) if x.sum() > 0 else x

    with pytest.raises(InvalidArgument, match=r"torch\.fx cannot trace Branchy"):
        from_torch(Branchy(), torch.zeros(2, 3))


def test_a_float32_module_is_read_in_float64_and_left_untouched():
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = [p.detach().clone() for p in module.parameters()]
    _, params = from_torch(module, torch.randn(5, 3))
    assert all(p.dtype == np.float64 for p in params)
    assert all(p.dtype == torch.float32 and torch.equal(p, q) for p, q in zip(module.parameters(), before, strict=True))


def test_an_embedding_is_a_dense_layer_on_one_hot_tokens_with_torchs_value_and_gradient():

    torch.manual_seed(0)
    net = BagOfEmbeddings().double()
    ids = torch.randint(0, 20, (16, 5))
    model, params = from_torch(net, ids)
    assert model.spec == "seq:5x20:onehot,dense(6),mean(last),dense(8,bias),relu,dense(3,bias)"
    out = net(ids)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(dim=1).mean()
    theirs = torch.autograd.grad(loss, list(net.parameters()))
    value, grads = value_and_grad(model, Square(), params, one_hot(ids, 20), y.detach().numpy())
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    assert np.allclose(grads[0], theirs[0].numpy().T, rtol=0, atol=1e-12 * float(theirs[0].abs().max()))
    assert all(np.allclose(g, t.numpy(), rtol=0, atol=1e-12 * float(t.abs().max()) + 1e-300)
               for g, t in zip(grads[1:], theirs[1:], strict=True))


class TwoEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, ids):
        return (self.a(ids) + self.b(ids)).mean(1)


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda: TwoEmbeddings(), "must read the module's input, the token ids, once"),
    (lambda: nn.Sequential(nn.Embedding(10, 4, max_norm=1.0), nn.Flatten(), nn.Linear(12, 2)), "max_norm"),
])
def test_an_embedding_that_cannot_convert_says_why_in_one_line(make, fragment):
    with pytest.raises(InvalidArgument, match=fragment):
        from_torch(make(), torch.randint(0, 9, (4, 3)))


def test_token_ids_out_of_range_are_a_clear_error():

    with pytest.raises(InvalidArgument, match=r"token ids in \[0, 5\)"):
        one_hot(torch.tensor([[0, 7]]), 5)


def test_one_hot_rows_of_a_large_vocabulary_take_the_memory_of_the_rows_alone():
    """One entry 1 per token, the rest 0, as np.eye would give, without its V x V identity
    (here 8 TB; GPT-2's 50,257 tokens made 20 GB)."""
    ids = torch.tensor([[3, 999_999], [0, 3]])
    rows = one_hot(ids, 1_000_000)
    assert rows.shape == (2, 2, 1_000_000) and rows.sum() == 4
    assert all(rows[n, t, ids[n, t]] == 1 for n in range(2) for t in range(2))


def test_a_transformer_decoder_on_one_input_is_one_clear_error_naming_the_two_input_routes():
    class Decoded(nn.Module):
        def __init__(self):
            super().__init__()
            self.dec = nn.TransformerDecoderLayer(4, 1, 8, dropout=0.0, batch_first=True)

        def forward(self, x):
            return self.dec(x, x)

    with pytest.raises(InvalidArgument, match=r"dec \(TransformerDecoderLayer\) is not supported \(on one input "
                                              r".* module of two inputs.* given \(tgt, memory\)"):
        from_torch(Decoded(), torch.randn(2, 3, 4))


@pytest.mark.parametrize("inputs, match", [
    ((torch.randn(2, 3, 4),), r"reads two inputs: give example_input=\(tgt, memory\)"),
    ((torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4)), r"takes example_input=\(tgt, memory\)"),
    ((torch.randn(2, 3, 4), torch.randn(2, 4)), r"two \(N, T, d\) tensors"),
])
def test_a_decoder_given_other_than_its_two_inputs_is_a_one_line_error(inputs, match):
    layer = nn.TransformerDecoderLayer(4, 1, 8, dropout=0.0, batch_first=True)
    with pytest.raises(InvalidArgument, match=match) as error:
        Converted.of(layer, inputs[0] if len(inputs) == 1 else inputs)
    assert "\n" not in str(error.value)


@settings(max_examples=12, deadline=None)
@given(norm_first=st.booleans(), bias=st.booleans(), batch_first=st.booleans(),
       activation=st.sampled_from(["relu", "gelu", "gelu-tanh", "silu"]), heads=st.sampled_from([1, 2]),
       rows=st.tuples(st.integers(1, 4), st.integers(1, 4)), seed=st.integers(0, 2**16))
def test_any_transformer_decoder_layer_converts_with_torchs_value_and_gradient(norm_first, bias, batch_first,
                                                                               activation, heads, rows, seed):
    """Its target's rows, then its memory's: one decode block, its multihead_attn a cross_attention;
    its activation a function (F.relu, F.gelu) or a module (nn.GELU("tanh"), nn.SiLU())."""
    torch.manual_seed(seed)
    act = {"gelu-tanh": nn.GELU("tanh"), "silu": nn.SiLU()}.get(activation, activation)
    layer = nn.TransformerDecoderLayer(4, heads, 6, dropout=0.0, activation=act,
                                       batch_first=batch_first, norm_first=norm_first, bias=bias).double()
    tgt, memory = (torch.randn(*((3, t) if batch_first else (t, 3)), 4, dtype=torch.float64) for t in rows)
    converted = Converted.of(layer, (tgt, memory))
    assert converted.model.spec.startswith(f"seq:{sum(rows)}x4:decode({rows[1]})[residual[")
    assert f"cross_attention(heads={heads},dk={4 // heads},dv={4 // heads}" in converted.model.spec
    assert f"dense(6{',bias' if bias else ''}),{activation.replace('-', '_')},dropout(0)" in converted.model.spec
    _assert_torchs_value_and_gradient(layer, (tgt, memory))


@pytest.mark.parametrize("make, inputs", [
    (lambda: nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0), 2, norm=nn.LayerNorm(4)),
     lambda: (torch.randn(3, 2, 4), torch.randn(5, 2, 4))),  # sequence first
    (lambda: nn.Transformer(4, 2, 2, 1, 6, dropout=0.0, batch_first=True),
     lambda: (torch.randn(2, 5, 4), torch.randn(2, 3, 4))),  # (src, tgt): its encoder makes the memory
    (lambda: nn.Transformer(4, 1, 1, 2, 6, dropout=0.0, norm_first=True, batch_first=True, bias=False),
     lambda: (torch.randn(2, 2, 4), torch.randn(2, 4, 4))),
], ids=["decoder-stack", "transformer", "transformer-pre-norm-bias-free"])
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # torch's, at a pre-norm encoder's construction
def test_a_transformer_decoder_and_a_whole_transformer_convert_with_torchs_value_and_gradient(make, inputs):
    torch.manual_seed(0)
    module, x = make().double(), tuple(t.double() for t in inputs())
    converted = Converted.of(module, x)
    encoder = converted.model.layers[0].second
    assert (len(encoder) > 0) == isinstance(module, nn.Transformer)
    _assert_torchs_value_and_gradient(module, x)


@pytest.mark.parametrize("name", list(ENCODER_DECODERS))
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_modules_of_two_inputs_around_a_transformer_decoder_convert_with_torchs_value_and_gradient(name):
    """Each input's side read as a chain, the decoder's layers in the target's: one decode
    block on the target's rows and then the memory's (its source's), token ids one-hot."""
    torch.manual_seed(0)
    make, example = ENCODER_DECODERS[name]
    module, x = make().double(), example()
    converted = Converted.of(module, x)
    assert "decode(" in converted.model.spec
    assert converted.packed_as == ((1, 0) if "translator" in name or name == "forecaster" else (0, 1))  # (src, tgt)
    assert converted.model.spec.startswith("seq:8x7:onehot,decode(5)[dense(8),") == (name == "translator")
    # the tutorial's: sequence first, its causal mask read
    assert converted.batch_axes == ((1, 1) if name == "tutorial-translator" else (0, 0))
    assert ("attention(heads=2,dk=4,dv=4,bias,causal)" in converted.model.spec) == (name == "tutorial-translator")
    _assert_torchs_value_and_gradient(module, x)


class _TwoInputs(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how
        self.decoder = nn.TransformerDecoderLayer(4, 1, 8, dropout=0.0, batch_first=True)
        self.a, self.b = nn.Linear(4, 4), nn.Linear(3, 4)
        self.register_buffer("memory_mask", torch.zeros(3, 2))

    def forward(self, x, m):
        if self.how == "no-decoder":
            return self.a(x) + self.a(m)
        if self.how == "causal":
            mask = nn.Transformer.generate_square_subsequent_mask(x.size(1), dtype=x.dtype)
            return self.decoder(x, m, tgt_mask=mask, tgt_is_causal=True)
        if self.how == "memory-masked":
            return self.decoder(x, m, memory_mask=self.memory_mask)
        if self.how == "memory-read-twice":
            return self.decoder(x + m.mean(1, keepdim=True), m)
        return self.decoder(self.a(x), self.b(m) if self.how == "widths" else m)


@pytest.mark.parametrize("how, match", [
    ("no-decoder", r"converts when it runs one Transformer decoder .* on them; it runs 0"),
    ("memory-masked", r"memory_mask: flowlaws reads a decoder's causal tgt_mask, no other mask"),
    ("widths", r"samples of shapes \(3, 4\) and \(2, 3\)"),
    ("memory-read-twice", r"not supported|computed values"),
])
def test_a_module_of_two_inputs_flowlaws_cannot_read_is_a_one_line_error(how, match):
    x, m = (torch.randn(2, 3, 4), torch.randn(2, 2, 3 if how == "widths" else 4))
    with pytest.raises(InvalidArgument, match=match) as error:
        Converted.of(_TwoInputs(how), (x, m))
    assert "\n" not in str(error.value)


def test_a_decoder_under_the_causal_target_mask_converts_with_causal_self_attention_and_torchs_values():
    torch.manual_seed(0)
    module = _TwoInputs("causal").double()
    x = (torch.randn(3, 4, 4, dtype=torch.float64), torch.randn(3, 2, 4, dtype=torch.float64))
    spec = Converted.of(module, x).model.spec
    assert "attention(heads=1,dk=4,dv=4,bias,causal)" in spec and "cross_attention(heads=1,dk=4,dv=4,bias)" in spec
    _assert_torchs_value_and_gradient(module, x)


def test_a_transformers_memory_law_joins_its_encoders_last_norm_to_every_cross_attentions_keys_and_values():
    """The encoder's final LayerNorm scales the memory's features, which every decoder layer's
    Wk and Wv rows absorb: one law across the two stacks. An SGD step moves it at second order
    in the step only; the same sum without the Wv rows (no law: a negative control), at first."""
    torch.manual_seed(0)
    module = nn.Transformer(4, 2, 1, 2, 6, dropout=0.0, batch_first=True).double()
    src, tgt, y = (torch.randn(3, t, 4, dtype=torch.float64) for t in (5, 2, 2))
    converted = Converted.of(module, (src, tgt))
    (law,) = [law for law in converted.laws()
              if law.kind.value == "unit" and ".enc." in law.name and "xattn" in law.name]
    assert law.formula.count("Wk") == law.formula.count("Wv") == 2 * 2  # 2 layers, 2 heads
    names = [name for name, _ in converted.model.param_specs]

    def without_values(params):
        by_name = dict(zip(names, params, strict=True))
        return by_name["dec0.enc.ln2.gamma"] ** 2 + by_name["dec0.enc.ln2.beta"] ** 2 - sum(
            (by_name[name] ** 2).sum(1) for name in names if "xattn" in name and ".Wk" in name)

    before = [law.value(converted.read()), without_values(converted.read())]
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-5)
    optimizer.zero_grad()
    (module(src, tgt) - y).pow(2).mean().backward()
    step = 1e-5 * np.abs(np.concatenate([g.ravel() for g in converted.read(lambda t: t.grad)])).max()
    optimizer.step()
    kept, broken = (np.abs(h(converted.read()) - b).max() for h, b in zip((law.value, without_values), before,
                                                                               strict=True))
    assert kept <= 1e-4 * step < 1e-2 * broken


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
def test_a_transformer_encoder_layer_converts_with_torchs_value_and_gradient(norm_first):
    torch.manual_seed(0)
    net = Encoder(norm_first, "gelu", dropout=0.0).double()
    x = torch.randn(6, 5, 8, dtype=torch.float64)
    model, params = from_torch(net, x)
    assert model.spec.startswith("seq:5x8:residual[layernorm(affine,eps=1e-05),attention(heads=2,dk=4,dv=4,bias)"
                                 if norm_first else "seq:5x8:residual[attention(heads=2,dk=4,dv=4,bias)")
    out = net(x)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(dim=1).mean()
    torch.autograd.grad(loss, list(net.parameters()))
    value, _ = value_and_grad(model, Square(), params, x.numpy(), y.detach().numpy())
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    assert sum(p.size for p in params) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("options", [{}, {"buffer": True}, {"norm_first": False}, {"layers": 2}])
def test_an_encoder_under_the_causal_mask_converts_with_causal_attention(options):
    """A GPT written with nn.TransformerEncoder: the mask made from the length by
    generate_square_subsequent_mask, or a buffer sliced to it, with is_causal."""
    torch.manual_seed(0)
    module, ids = EncoderGPT(**options).double(), torch.randint(0, 8, (3, 5))
    spec = Converted.of(module, ids).model.spec
    assert spec.count("attention(heads=2,dk=4,dv=4,bias,causal)") == options.get("layers", 1)
    _assert_torchs_value_and_gradient(module, ids)


@pytest.mark.parametrize("call, match", [
    (lambda layer, x: layer(x, is_causal=True), "is_causal without its src_mask"),
    (lambda layer, x: layer(x, src_mask=torch.zeros(5, 5)), "an src_mask other than the causal one"),
    (lambda layer, x: layer(x, src_mask=torch.triu(torch.ones(5, 5, dtype=torch.bool), 1).T),
     "an src_mask other than the causal one"),
    (lambda layer, x: layer(x, None, torch.zeros(2, 5, dtype=torch.bool)), "a key padding mask"),
])
def test_an_encoder_layer_with_another_mask_is_a_clear_error(call, match):
    class Masked(Encoder):
        def forward(self, x):
            return self.head(call(self.layer, x).mean(1))

    with pytest.raises(InvalidArgument, match=match):
        from_torch(Masked(True), torch.randn(2, 5, 8))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_tied_models_linear_laws_are_kept_exactly_where_its_gradient_keeps_them(seed):
    """nanoGPT with its head tied to wte, judged by value at perturbed weights and fresh
    tokens: h(T theta)'s change along the tied gradient is h of the gradient each use reads
    (the tied one, copied). The token embedding's column sums less the position embedding's
    are kept and hold; every other linear law through the tie is dropped and does not."""
    torch.manual_seed(seed)
    net = NanoGPT(dropout=0.0).double()
    ids, targets = torch.randint(0, 8, (6, 5)), torch.randint(0, 8, (6, 5))
    converted = Converted.of(net, ids)
    kept = {law.name for law in converted.laws(torch.nn.CrossEntropyLoss())}
    through = [law for law in laws(converted.model, CrossEntropy()) if law.order == 1
               and converted.tied.intersection(law.params)]
    assert "translation unit dense0/pos0.W" in kept
    assert len(through) > len(kept.intersection(law.name for law in through))  # some are dropped
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))  # off the initialization's unit gains and zero shifts
    torch.nn.functional.cross_entropy(net(ids).flatten(0, 1), targets.flatten()).backward()
    grads = converted.read(lambda t: t.grad)
    for law in through:
        change = np.abs(law.value(grads)).max() / law.magnitude(*[tuple(np.abs(g) for g in grads)] * 2).max()
        assert (change < 1e-12) == (law.name in kept), (law.name, change)


def test_a_gpt_style_model_converts_with_causal_attention_and_torchs_value():

    torch.manual_seed(0)
    net = GPT().double()
    ids = torch.randint(0, 16, (4, 5))
    model, params = from_torch(net, ids)
    assert model.spec == ("seq:5x16:onehot,dense(8),residual[layernorm(affine,eps=1e-05),attention(heads=2,dk=4,"
                          "dv=4,bias,causal)],residual[layernorm(affine,eps=1e-05),dense(32,bias),gelu,dense(8,bias)],"
                          "layernorm(affine,eps=1e-05),dense(16)")
    out = net(ids)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(dim=(1, 2)).mean()  # flowlaws' square loss: a sample is (T, vocabulary)
    value, _ = value_and_grad(model, Square(), params, one_hot(ids, 16), y.detach().numpy())
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())


class Masked(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 1, batch_first=True)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return self.attn(x, x, x, attn_mask=self.mask, need_weights=False)[0].mean(1)


def test_an_attention_mask_other_than_the_causal_one_is_a_clear_error():
    with pytest.raises(InvalidArgument, match="an attn_mask other than the causal one"):
        from_torch(Masked(torch.eye(3, dtype=torch.bool)), torch.randn(2, 3, 4))
    model, _ = from_torch(Masked(torch.triu(torch.full((3, 3), float("-inf")), 1)), torch.randn(2, 3, 4))
    assert "causal" in model.spec  # a float mask of -inf above the diagonal is causal too


@pytest.mark.parametrize("name", list(REFERENCE))
def test_the_reference_models_convert_with_torchs_value_and_gradient(name):
    torch.manual_seed(0)
    make, example = REFERENCE[name]
    x = example()
    _assert_torchs_value_and_gradient(make().double(), x)


def _assert_torchs_value_and_gradient(module, x):
    """The converted model's square loss and its gradient equal torch's to 1e-12, on x (a
    tuple: a decoder's inputs) as the model reads it (`Converted.samples`: batch first, token
    ids one-hot, a decoder's inputs packed) and the module's output read batch first."""
    converted = Converted.of(module, x)
    inputs = converted.samples(x)
    out = module(*x) if isinstance(x, tuple) else module(x)
    out = (out[0] if isinstance(out, tuple) else out).movedim(converted.batch_axes[1], 0)  # (logits, loss): logits
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).flatten(1).sum(1).mean()
    loss.backward()
    value, grads = value_and_grad(converted.model, Square(), converted.read(), inputs, y.detach().numpy())
    theirs = np.concatenate([g.ravel() for g in converted.read(lambda t: t.grad)])
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    assert np.max(np.abs(np.concatenate([g.ravel() for g in grads]) - theirs)) <= 1e-12 * np.max(np.abs(theirs))


@settings(max_examples=12, deadline=None)
@given(heads=st.sampled_from([1, 2]), grouped=st.booleans(), pairs=st.booleans(), mlp=st.booleans(),
       tokens=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_any_llama_layer_converts_with_torchs_value_and_gradient(heads, grouped, pairs, mlp, tokens, seed):
    """rotate_half or GPT-J's pairs, repeat_kv or not, with or without the MLP, any length."""
    torch.manual_seed(seed)
    module = Llama(d=8, heads=heads, pairs=pairs, mlp=mlp, kv_heads=1 if grouped else None).double()
    x = torch.randn(3, tokens, 8, dtype=torch.float64)
    assert ("kv_heads=1" in Converted.of(module, x).model.spec) == (grouped and heads == 2)
    _assert_torchs_value_and_gradient(module, x)


@pytest.mark.parametrize("scale", [None, 0.5 ** 0.5, 0.25, 1.0])
def test_scaled_dot_product_attentions_scale_converts_to_attentions_scale(scale):
    """F.scaled_dot_product_attention(..., scale=s): its default (None, or 1/sqrt(width)
    given) is attention's; any other s is ``scale=s``."""
    module = ThreeProjections(scale=scale).double()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    spec = Converted.of(module, x).model.spec
    assert ("scale=" in spec) == (scale in (0.25, 1.0)) and (scale not in (0.25, 1.0) or f"scale={scale:g})" in spec)
    _assert_torchs_value_and_gradient(module, x)


def test_lets_build_gpt_converts_as_written_its_heads_modules_of_their_own():
    """Karpathy's "Let's build GPT": each Head's key, query and value Linears (no bias), the
    heads concatenated and projected (a bias on the projection alone: out_bias), and the
    model's (logits, loss) read by its logits."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    attention = "attention(heads=2,dk=2,dv=2,causal,out_bias)"
    assert from_torch(MultiHeadAttention(2, 2), x)[0].spec == f"seq:5x4:{attention},dropout(0)"
    assert from_torch(GPTLanguageModel(n_layer=2), torch.randint(0, 8, (2, 5)))[0].spec == (
        f"seq:5x8:onehot,dense(4),offset,residual[layernorm(affine,eps=1e-05),{attention},dropout(0)],"
        "residual[layernorm(affine,eps=1e-05),dense(16,bias),relu,dense(4,bias),dropout(0)],"
        f"residual[layernorm(affine,eps=1e-05),{attention},dropout(0)],"
        "residual[layernorm(affine,eps=1e-05),dense(16,bias),relu,dense(4,bias),dropout(0)],"
        "layernorm(affine,eps=1e-05),dense(8,bias)")
    assert "dropout(0.2)" in from_torch(LectureBlock(4, 2, dropout=0.2), x)[0].spec  # checked in eval mode
    _assert_torchs_value_and_gradient(MultiHeadAttention(3, 2, n_embd=6).double(), torch.randn(3, 5, 6).double())
    _assert_torchs_value_and_gradient(LectureBlock(4, 2).double(), x)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("qkv_bias", [True, False])
def test_timms_attention_converts_from_its_unbound_qkv_by_either_path(fused, qkv_bias):
    """timm's Attention: qkv(x).reshape(N, T, 3, heads, width).permute(2, 0, 3, 1, 4).unbind(0),
    q_norm and k_norm Identity, then F.scaled_dot_product_attention or its manual path (q
    scaled, then q @ k^T); the projection's bias alone when qkv has none."""
    torch.manual_seed(0)
    module = TimmAttention(4, qkv_bias=qkv_bias, fused_attn=fused, attn_drop=0.1).double()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    assert from_torch(module, x)[0].spec == (
        f"seq:5x4:attention(heads=2,dk=2,dv=2,{'bias' if qkv_bias else 'out_bias'}),dropout(0)")
    _assert_torchs_value_and_gradient(module.eval(), x)


@pytest.mark.parametrize("name", list(WRITTEN_ACTIVATIONS))
def test_an_activation_written_out_by_hand_converts_to_the_activation_it_computes(name):
    """minGPT's NewGELU (the tanh GELU as a formula), OpenCLIP's QuickGELU (x * sigmoid(1.702
    x)), an erf GELU, x * sigmoid(x), Mish and log1p(exp(x)) written out: each read by its
    values as the activation it is (a swish's beta fitted)."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), WRITTEN_ACTIVATIONS[name], nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    assert from_torch(module, x)[0].spec == f"mlp:3-4-2:{name}:bias"
    _assert_torchs_value_and_gradient(module, x)


@settings(max_examples=20, deadline=None)
@given(beta=st.floats(0.05, 8.0), order=st.booleans())
def test_any_swish_written_out_converts_with_its_beta_and_torchs_value_and_gradient(beta, order):
    """x * sigmoid(beta x), the factor on either side, for any beta: swish(beta) to 12 digits,
    except beta = 1, which is silu."""
    beta = round(beta, 6)
    swish = (lambda x: x * torch.sigmoid(beta * x)) if order else (lambda x: torch.sigmoid(x * beta) * x)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), Applied(swish), nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    act = from_torch(module, x)[0].layers[1]
    assert act.name == ("silu" if beta == 1 else "swish")
    assert act.name == "silu" or abs(act.args[0] - beta) <= 1e-9 * beta
    _assert_torchs_value_and_gradient(module, x)


def test_a_formula_no_activation_matches_is_left_as_it_is():
    """x * tanh(x) is none of flowlaws' activations (nor a swish, whatever its beta): the gate
    of x by a branch, gated[tanh] (x itself the other factor); a formula of a residual sum (x
    + 0.1 tanh(x)) converts as the fork it is, and x / 2 written out as the scalings it is."""
    odd = nn.Sequential(nn.Linear(3, 4), Applied(lambda x: x * torch.tanh(x)), nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    assert from_torch(odd, x)[0].spec == "seq:3:dense(4,bias),gated[tanh],dense(2,bias)"
    _assert_torchs_value_and_gradient(odd, x)
    module = nn.Sequential(nn.Linear(3, 4), Applied(lambda x: x + 0.5 * torch.tanh(x)), nn.Linear(4, 2)).double()
    assert "residual" in from_torch(module, torch.randn(5, 3, dtype=torch.float64))[0].spec
    half = nn.Sequential(nn.Linear(3, 4), Applied(lambda x: (x * 0.25) * 2.0), nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)  # x / 2, sigmoid(0) at 1: scalings, not a swish(0)
    assert "swish" not in from_torch(half, x)[0].spec
    _assert_torchs_value_and_gradient(half, x)


def test_an_attention_bias_on_some_projections_only_is_a_one_line_error():
    module = MultiHeadAttention(2, 2)
    module.heads[0].query = nn.Linear(4, 2)  # one head's queries biased, the others' not
    with pytest.raises(InvalidArgument, match="a bias on some of its projections only") as caught:
        from_torch(module, torch.randn(2, 5, 4))
    assert "\n" not in str(caught.value)


def test_nanogpts_manual_attention_converts_to_the_model_and_parameters_of_its_flash_path():
    x = torch.randint(0, 8, (2, 5))
    torch.manual_seed(0)
    manual = from_torch(NanoGPT(flash=False), x)
    torch.manual_seed(0)
    flash = from_torch(NanoGPT(), x)
    assert manual[0].spec == flash[0].spec and "attention(heads=2,dk=2,dv=2,bias,causal)" in manual[0].spec
    assert all(np.array_equal(a, b) for a, b in zip(manual[1], flash[1], strict=True))


@settings(max_examples=15, deadline=None)
@given(scale=st.sampled_from(["product", "quotient", "width"]), transpose=st.sampled_from(["-2,-1", "2,3", "mT"]),
       mask=st.sampled_from(["filled", "added", "none"]),
       softmax=st.sampled_from(["function", "method", "torch", "module"]),
       dropout=st.booleans(), tokens=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_attention_written_by_hand_converts_with_torchs_value_and_gradient(scale, transpose, mask, softmax, dropout,
                                                                           tokens, seed):
    """softmax(q @ k^T * s, masked causally or not) @ v, written as people write it: s is
    1/sqrt(width) (the default), or any other factor (1/width here, muP's: scale=0.5)."""
    torch.manual_seed(seed)
    module = WrittenAttention(scale=scale, transpose=transpose, mask=mask, softmax=softmax, dropout=dropout).double()
    x = torch.randn(3, tokens, 4, dtype=torch.float64)
    options = ",causal" * (mask != "none") + ",scale=0.5" * (scale == "width")
    assert Converted.of(module, x).model.spec == (
        f"seq:{tokens}x4:attention(heads=2,dk=2,dv=2,bias{options}),mean(last),dense(2,bias)")
    _assert_torchs_value_and_gradient(module, x)


@pytest.mark.parametrize(("module", "reason"), [
    (WrittenAttention(mask="diagonal"), "a masked_fill other than the causal mask's"),
    (WrittenAttention(dim=-2), "a softmax over dim -2, not the keys"),
    (WrittenAttention(dim=2, softmax="module"), "a softmax over dim 2, not the keys"),
    (Head(2), "torch.cat"),
])
def test_attention_written_by_hand_that_flowlaws_cannot_read_is_a_one_line_error(module, reason):
    with pytest.raises(InvalidArgument, match="attention written by hand") as caught:
        from_torch(module, torch.randn(2, 5, 4))
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_the_reference_models_read_as_graph_specs():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 4, 4)
    block = ("residual[layernorm(affine,eps=1e-05),attention(heads=2,dk=2,dv=2,bias),dropout(0)],"
             "residual[layernorm(affine,eps=1e-05),dense(8,bias),gelu,dropout(0),dense(4,bias),dropout(0)]")
    assert from_torch(ViT(), images)[0].spec == (  # the class token put first, the position embedding added
        f"seq:3x4x4:conv2d(4,2,stride=2,bias),flatten(start=1),moveaxis(0,-1),prepend,offset,{block},token,"
        "layernorm(affine,eps=1e-05),dense(3,bias)")
    assert from_torch(Mixer(), images)[0].spec == (  # token mixing: a dense layer on the transposed sequence
        "seq:3x4x4:conv2d(4,2,stride=2,bias),flatten(start=1),moveaxis(0,-1),residual[layernorm(affine,eps=1e-05),"
        "moveaxis(0,-1),dense(8,bias),gelu,dense(4,bias),moveaxis(0,-1)],residual[layernorm(affine,eps=1e-05),"
        "dense(8,bias),gelu,dense(4,bias)],layernorm(affine,eps=1e-05),mean(last),dense(3,bias)")
    assert from_torch(ConvNeXt(), images)[0].spec == (  # channels last and back, the layer scale
        "seq:3x4x4:conv2d(4,2,stride=2,bias),moveaxis(0,-1),layernorm(affine,eps=1e-06),moveaxis(-1,0),"
        "residual[conv2d(4,7,padding=3,bias,groups=4),moveaxis(0,-1),layernorm(affine,eps=1e-06),dense(16,bias),"
        "gelu,dense(4,bias),scale,moveaxis(-1,0)],mean,layernorm(affine,eps=1e-06),dense(3,bias)")
    assert from_torch(NanoGPT(), torch.randint(0, 8, (2, 5)))[0].spec == (  # wpe(arange(T)): an offset;
        "seq:5x8:onehot,dense(4),offset,dropout(0.1),residual[layernorm(affine,eps=1e-05),"  # c_attn, split, heads,
        "attention(heads=2,dk=2,dv=2,bias,causal),dropout(0.1)],residual[layernorm(affine,eps=1e-05),"  # sdpa
        "dense(16,bias),gelu,dense(4,bias),dropout(0.1)],layernorm(affine,eps=1e-05),dense(8)")
    assert from_torch(NanoGPT(bias=False), torch.randint(0, 8, (2, 5)))[0].spec == (  # a gain alone: scale
        "seq:5x8:onehot,dense(4),offset,dropout(0.1),residual[layernorm(eps=1e-05),scale,attention(heads=2,dk=2,dv=2,"
        "causal),dropout(0.1)],residual[layernorm(eps=1e-05),scale,dense(16),gelu,dense(4),dropout(0.1)],"
        "layernorm(eps=1e-05),scale,dense(8)")
    for options, rope in (({}, "rope,rope_halves"), ({"pairs": True}, "rope"),  # rotate_half, GPT-J's pairs
                          ({"kv_heads": 1}, "kv_heads=1,rope,rope_halves"),  # Hugging Face's repeat_kv
                          ({"base": 500000.0}, "rope,rope_halves,rope_base=500000"),  # Llama 3's base
                          ({"base": 500000.0, "float32": True}, "rope,rope_halves,rope_base=500000")):
        assert from_torch(Llama(d=8, **options), torch.randn(2, 5, 8))[0].spec == (
            f"seq:5x8:residual[rmsnorm(affine,eps=2.220446049250313e-16),attention(heads=2,dk=4,dv=4,{rope},"
            "causal)],residual[rmsnorm(affine,eps=2.220446049250313e-16),gated[dense(16),silu | dense(16)],"
            "dense(8)],mean(last),dense(3)")  # and Hugging Face's LlamaMLP: SwiGLU
    assert "kv_heads" not in from_torch(Llama(d=8, kv_heads=2), torch.randn(2, 5, 8))[0].spec  # repeat_kv(v, 1)


class _TwoRotaryBlocks(nn.Module):
    """Two pre-norm Llama attentions, one of each pairing: each reads its own projections."""

    def __init__(self):
        super().__init__()
        self.norms = nn.ModuleList([nn.RMSNorm(8), nn.RMSNorm(8)])
        self.attns = nn.ModuleList([LlamaAttention(8, 2), LlamaAttention(8, 2, pairs=True)])
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        for norm, attn in zip(self.norms, self.attns, strict=True):
            x = x + attn(norm(x))
        return self.head(x.mean(1))


def test_rotary_blocks_one_after_another_each_convert_with_their_own_pairing():
    torch.manual_seed(0)
    net, x = _TwoRotaryBlocks().double(), torch.randn(2, 6, 8, dtype=torch.float64)
    model, params = from_torch(net, x)
    assert [layer.block[1].rope_halves for layer in model.layers[:2]] == [True, False]
    assert np.allclose(model.forward(params, x.numpy())[0], net(x).detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("options", "match"), [
    ({"start": 1}, r"is not .* with RoPE \(at positions 0..T-1"),  # positions from 1
    ({"keys": False}, "the queries and the keys are not rotated alike"),
])
def test_a_rotary_embedding_flowlaws_does_not_read_is_a_one_line_error(options, match):
    with pytest.raises(InvalidArgument, match=match) as error:
        from_torch(Llama(d=8, **options), torch.randn(2, 5, 8))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("options", "match"), [({"mask": True}, "a mask"),
                                                ({"leak": True}, "used outside the attention")])
def test_split_attention_that_flowlaws_cannot_read_is_a_one_line_error(options, match):
    with pytest.raises(InvalidArgument, match=match) as error:
        from_torch(ThreeProjections(**options), torch.randn(3, 5, 4))
    assert "\n" not in str(error.value)


class _Appended(nn.Module):  # a token put after the sequence
    def __init__(self):
        super().__init__()
        self.a, self.cls = nn.Linear(3, 3), nn.Parameter(torch.zeros(1, 1, 3))

    def forward(self, x):
        return torch.cat([self.a(x), self.cls.expand(x.shape[0], -1, -1)], dim=1).flatten(1)


class _Positions(nn.Module):  # two computed values joined along the positions
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv1d(2, 2, 1), nn.Conv1d(2, 2, 1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=2).flatten(1)


class _Reversed(nn.Module):  # two axes moved at once
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1)

    def forward(self, x):
        return self.a(x).permute(0, 3, 2, 1).flatten(1)


class _Broadcast(nn.Module):  # a bias-shaped parameter added to a sequence
    def __init__(self):
        super().__init__()
        self.a, self.p = nn.Linear(3, 3), nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return (self.a(x) + self.p).flatten(1)


class _Feature(nn.Module):  # one feature of every position
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)

    def forward(self, x):
        return self.a(x)[:, :, 0]


class _Split(nn.Module):  # a view that splits an axis
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x):
        return self.a(x).view(x.shape[0], 2, 2, 2).flatten(1)


class _Unprojected(ThreeProjections):  # attention's output summed, not read by a Linear
    def forward(self, x):
        n, t, d = x.shape
        q, k, v = (p(x).view(n, t, self.heads, d // self.heads).transpose(1, 2) for p in (self.q, self.k, self.v))
        return self.head(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d).mean(1))


class _WideNorm(nn.Module):  # F.layer_norm over two axes
    def __init__(self):
        super().__init__()
        self.w, self.b, self.head = nn.Parameter(torch.ones(2, 3)), nn.Parameter(torch.zeros(2, 3)), nn.Linear(6, 1)

    def forward(self, x):
        return self.head(F.layer_norm(x, (2, 3), self.w, self.b).flatten(1))


@pytest.mark.parametrize(("make", "shape", "fragment"), [
    (_Unprojected, (2, 5, 4), r"its output is not y.transpose\(1, 2\)"),
    (_WideNorm, (2, 2, 3), r"F.layer_norm of the last axis \(3\)"),
    (_Appended, (2, 2, 3), "learned tokens put before a"),
    (_Positions, (2, 2, 3), r"torch.cat of 2 tensors along dim 2; flowlaws converts computed values joined along"),
    (_Reversed, (2, 2, 3, 3), "a move of one sample axis"),
    (_Broadcast, (2, 2, 3), r"the parameter p of shape \(3,\) added to a value of shape"),
    (_Feature, (2, 2, 3), r"x\[:, t\] of a \(N, T, d\) sequence"),
    (_Split, (2, 2, 4), "reshapes that merge a sample's trailing axes"),
    (lambda: _linears(lambda x: torch.sigmoid(x) ** 2), (3, 4), r"a power converts as relu\(z\) \*\* k for k >= 1"),
    (lambda: _linears(lambda x: F.relu(x) ** 0.5), (3, 4), r"a power converts as relu\(z\) \*\* k for k >= 1"),
    (lambda: _linears(lambda x: (lambda r: r.square() + r)(F.relu(x))), (3, 4), "a ReLU nothing else reads"),
    (lambda: _linears(lambda x: x.clamp(min=-1)), (3, 4), r"flowlaws converts clamp\(min=0\) \(a ReLU\)"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.GLU(dim=1), nn.Flatten(), nn.Linear(4, 2)), (3, 2, 4),
     "a GLU converts as the gate of the two halves of the output units of a Linear"),
    (lambda: nn.Sequential(nn.Conv1d(2, 4, 1, groups=2), nn.GLU(dim=1), nn.Flatten(), nn.Linear(6, 2)), (3, 2, 3),
     "a convolution of one group"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.GLU(), nn.Linear(2, 2)), (3, 3), "that nothing else reads"),
], ids=["attention-unprojected", "layer-norm-two-axes", "cat-after", "permute-two-axes", "broadcast-parameter",
        "feature-index", "split-view",
        "cat-of-positions", "sigmoid-squared", "relu-root", "relu-read-twice", "clamp-below-zero",
        "glu-across-positions", "glu-of-a-grouped-conv", "glu-of-a-relu"])
def test_a_graph_operation_flowlaws_does_not_convert_is_one_line_naming_it(make, shape, fragment):
    with pytest.raises(InvalidArgument, match=fragment) as error:
        from_torch(make(), torch.randn(*shape))
    assert "\n" not in str(error.value)


class _TokenMixing(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(2, 2)

    def forward(self, x):
        return self.b(self.a(x).mT).flatten(1)


def test_torch_cat_of_computed_values_is_a_concatenation_each_branch_in_its_place():
    """A U-Net's skip (the ancestor itself, first), a DenseNet layer's cat(x, f(x)), and an
    Inception module's three branches in one torch.cat (nested: the first two innermost)."""
    torch.manual_seed(0)
    assert from_torch(UNet(), torch.randn(2, 1, 4, 4))[0].spec == (
        "seq:1x4x4:conv2d(2,3,padding=1,bias),relu,concat[ | maxpool2d(2),conv2d(3,3,padding=1,bias),relu,"
        "conv_transpose2d(2,2,stride=2,bias)],conv2d(2,3,padding=1),batchnorm(affine,eps=1e-05),relu,"
        "conv2d(2,1,bias),flatten,dense(2,bias)")
    assert from_torch(Inception(), torch.randn(2, 2, 4))[0].spec == (
        "seq:2x4:conv1d(3,1,bias),relu,concat[concat[conv1d(2,1,bias) | conv1d(2,1,bias),relu,"
        "conv1d(2,3,padding=1,bias)] | maxpool1d(3,stride=1,padding=1),conv1d(2,1,bias)],relu,flatten,dense(2,bias)")


def test_a_transpose_written_as_mT_is_a_moveaxis():
    assert from_torch(_TokenMixing(), torch.randn(2, 2, 3))[0].spec == \
        "seq:2x3:dense(3,bias),moveaxis(0,-1),dense(2,bias),flatten"


def test_a_layernorm_without_a_bias_is_a_layernorm_then_a_gain_and_its_laws_are_discoverys():
    torch.manual_seed(0)
    net, x = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4, bias=False), nn.ReLU(), nn.Linear(4, 2)), torch.randn(6, 3)
    model, _ = from_torch(net, x)
    assert model.spec == "seq:3:dense(4,bias),layernorm(eps=1e-05),scale,relu,dense(2,bias)"
    found = discover(model)
    assert found.count == found.derived == 8 and found.decided_by == "bounds"  # centring (4), gain/dense1 (4)
    assert {law.name for law in laws_of(net, x)} >= {"unit scale0/dense1", "translation layer dense0/ln0.b"}


def test_a_squared_relu_is_relu_power_2_whose_law_weighs_the_outgoing_weights_twice():
    """F.relu(x).square() (modded-nanoGPT's MLP) is relu_power(2), of degree 2: scaling a unit's
    incoming weights by c scales its output by c^2, so ||in_i||^2 - 2 ||out_i||^2 is its law
    (docs/theory.md 3.4), checked here by its value: orthogonal to the module's own gradient."""
    torch.manual_seed(0)
    net, x = SquaredReLU().double(), torch.randn(3, 5, 4, dtype=torch.float64)
    assert from_torch(net, x)[0].spec == "seq:5x4:dense(8),relu_power(2),dense(4)"
    unit, _ = laws_of(net, x)
    assert unit.formula == "‖dense0.W[i,:]‖² − 2·‖dense1.W[:,i]‖²"
    (net(x) * torch.randn(3, 5, 4, dtype=torch.float64)).sum().backward()
    W, V = net.c_fc.weight, net.c_proj.weight
    change = (W * W.grad).sum(1) - 2 * (V * V.grad).sum(0)  # d/dt of each unit's law along -grad, up to -2
    assert change.abs().max() <= 1e-12 * ((W * W.grad).abs().sum(1) + 2 * (V * V.grad).abs().sum(0)).max()


def test_a_hardsigmoid_converts_with_torchs_value_and_the_exact_slope_one_sixth():
    """nn.Hardsigmoid is relu6(z + 3) / 6: the same value as torch's to 1e-12; its slope is
    1/6 exactly, as torch's gradient of relu6(z + 3) / 6 has it (torch's own hardsigmoid
    backward multiplies by 1/6 rounded to float32, 3e-8 off)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Hardsigmoid(), nn.Linear(5, 2)).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    model, params = from_torch(net, x)
    assert model.spec == "mlp:4-5-2:hardsigmoid:bias"
    y = torch.randn(6, 2, dtype=torch.float64)
    out = net[2](F.relu6(net[0](x) + 3) / 6)
    assert torch.allclose(out, net(x), rtol=0, atol=1e-15)
    loss = 0.5 * ((out - y) ** 2).sum(dim=1).mean()
    theirs = torch.autograd.grad(loss, list(net.parameters()))
    value, grads = value_and_grad(model, Square(), params, x.numpy(), y.numpy())
    assert abs(value - loss.item()) <= 1e-12 * loss.item()
    ours, expected = (np.concatenate([np.ravel(g) for g in gs]) for gs in (grads, theirs))
    assert np.abs(ours - expected).max() <= 1e-12 * np.abs(expected).max()


def test_a_norm_of_a_channel_dead_relus_left_constant_is_told_apart_from_a_live_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 2, 1), nn.ReLU(), nn.BatchNorm1d(2), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    x = torch.randn(4, 2, 8, dtype=torch.float64)
    net = net.double()
    assert not normalizes_a_constant_group(net, x)
    with torch.no_grad():
        net[0].bias[1] = -1e3  # channel 1 dead: the BatchNorm sees it constant (0) over the batch
    assert normalizes_a_constant_group(net, x)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_module_built_of_what_converts_has_torchs_value_and_gradient(data):
    torch.manual_seed(data.draw(st.integers(0, 100), label="seed"))
    module = data.draw(torch_modules(), label="module")
    x = example_for(module, 4)
    assume(not normalizes_a_constant_group(module, x))
    model, params = from_torch(module, x)
    assert parse(model.spec) == model
    out = module(x)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(dim=1).mean()
    loss.backward()
    value, grads = value_and_grad(model, Square(), params, x.numpy(), y.detach().numpy())
    assert abs(value - loss.item()) <= 1e-12 * max(loss.item(), 1e-300)
    theirs = np.concatenate([g.ravel() for g in Converted.of(module, x).read(lambda t: t.grad)])
    ours = np.concatenate([g.ravel() for g in grads])
    assert np.abs(ours - theirs).max() <= 1e-12 * max(np.abs(theirs).max(), 1e-300)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_sparse_matrix_ranked_part_by_part_has_the_rank_of_the_whole(data):
    """`_sparse_rank` (tied laws' rank) sums the ranks of the parts of the graph of rows and
    entries; drawn matrices of a few blocks, with repeated and combined rows, empty rows and
    unused entries, have the rank numpy gives the dense matrix."""
    import scipy.sparse

    from flowlaws.torch.conversion import _sparse_rank

    rows, columns = data.draw(st.integers(1, 8), label="rows"), data.draw(st.integers(1, 10), label="entries")
    mask = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=columns, max_size=columns),
                                       min_size=rows, max_size=rows), label="pattern"))
    A = np.where(mask, np.random.default_rng(data.draw(st.integers(0, 99), label="seed")).normal(size=mask.shape), 0.0)
    if data.draw(st.booleans(), label="combined rows"):  # a row the sum of two others: rank below the count
        A = np.vstack([A, A[0] + A[-1]])
    assert _sparse_rank(scipy.sparse.csr_matrix(A)) == np.linalg.matrix_rank(A)


def test_a_part_over_the_entry_limit_has_no_rank(monkeypatch):
    import scipy.sparse

    import flowlaws.torch.conversion as conversion

    A = scipy.sparse.csr_matrix(np.ones((3, 4)))
    assert conversion._sparse_rank(A) == 1
    monkeypatch.setattr(conversion, "TIED_ENTRIES", 11)
    assert conversion._sparse_rank(A) is None


def test_the_pytorch_tutorials_transformer_converts_with_its_float32_position_table():
    """Its table is built in float32 (to 64 T float32 round-offs of the exact one, which
    flowlaws computes), traced as a buffer sliced by the length; the conversion's check runs
    its graph with the exact table, and the laws are those of the same model built with it."""
    torch.manual_seed(0)
    tokens = torch.randint(0, 8, (4, 5))
    model, _ = from_torch(TutorialTransformer(), tokens)
    assert "dense(8),prelu(2.8284271247461903,2.8284271247461903),sinusoid,dropout(0)" in model.spec
    exact = TutorialTransformer(table=torch.float64)
    assert [law.formula for law in laws_of(TutorialTransformer(), tokens)] == \
        [law.formula for law in laws_of(exact, tokens)]


class Encoded(nn.Module):
    """A position table added to a projected sequence: sin and cos of t base^(-2i/d),
    interleaved or in halves, built in ``dtype``; ``shift`` positions late (no encoding)."""

    def __init__(self, d, base, halves, dtype, shift=0):
        super().__init__()
        self.proj, self.head = nn.Linear(3, d), nn.Linear(d, 2)
        angles = torch.arange(shift, 16 + shift, dtype=dtype)[:, None] * base ** (
            -torch.arange(0, d, 2, dtype=dtype) / d)
        table = torch.zeros(16, d, dtype=dtype)
        if halves:
            table[:, :d // 2], table[:, d // 2:] = torch.sin(angles), torch.cos(angles)
        else:
            table[:, 0::2], table[:, 1::2] = torch.sin(angles), torch.cos(angles[:, :d // 2])
        self.register_buffer("table", table)

    def forward(self, x):
        return self.head(torch.relu(self.proj(x) + self.table[:x.shape[1]]).mean(1))


@settings(max_examples=20, deadline=None)
@given(T=st.integers(2, 6), d=st.integers(2, 9), halves=st.booleans(), base=st.sampled_from([10.0, 100.0, 1e4, 5e5]),
       float32=st.booleans(), seed=st.integers(0, 2**16))
def test_a_sinusoidal_table_is_read_with_its_layout_and_base_and_converts_with_torchs_value_and_gradient(
        T, d, halves, base, float32, seed):
    assume(not (halves and d % 2))
    torch.manual_seed(seed)
    module = Encoded(d, base, halves, torch.float32 if float32 else torch.float64).double()
    x = torch.randn(3, T, 3, dtype=torch.float64)
    layer = next(layer for layer in Converted.of(module, x).model.layers if layer.kind == "sinusoid")
    # two features are one layout (sin, cos); one frequency has no base to read
    assert (layer.halves == halves or d == 2) and (d < 3 + halves or layer.base == pytest.approx(base, rel=1e-5))
    if not float32:
        _assert_torchs_value_and_gradient(module, x)


@pytest.mark.parametrize("module, match", [
    (lambda: Encoded(6, 1e4, False, torch.float64, shift=1), "not a sinusoidal position encoding"),
    (lambda: Encoded(6, 1e4, False, torch.float64).apply(lambda m: m.table.normal_() if isinstance(m, Encoded)
                                                         else None), "not a sinusoidal position encoding"),
])
def test_a_constant_added_that_is_no_sinusoidal_table_is_a_clear_error(module, match):
    with pytest.raises(InvalidArgument, match=match):
        from_torch(module(), torch.randn(2, 4, 3))


def test_a_constant_multiplied_is_a_clear_error():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(3, 4)
            self.register_buffer("mask", torch.ones(8, 4))

        def forward(self, x):
            return (self.proj(x) * self.mask[:x.size(1)]).mean(1)

    with pytest.raises(InvalidArgument, match=r"a constant of shape \(4, 4\) joined to a value"):
        from_torch(Masked(), torch.randn(2, 4, 3))


@pytest.mark.parametrize("gelu", [nn.GELU(approximate="tanh"), lambda z: F.gelu(z, approximate="tanh")])
def test_gpt2s_tanh_gelu_converts_with_torchs_value_and_gradient(gelu):
    class MLP(nn.Module):  # GPT-2's: c_fc, gelu_new, c_proj
        def __init__(self):
            super().__init__()
            self.c_fc, self.c_proj, self.act = nn.Linear(4, 16), nn.Linear(16, 4), gelu

        def forward(self, x):
            return self.c_proj(self.act(self.c_fc(x))).mean(1)

    torch.manual_seed(0)
    module, x = MLP().double(), torch.randn(3, 5, 4, dtype=torch.float64)
    assert "gelu_tanh" in Converted.of(module, x).model.spec
    _assert_torchs_value_and_gradient(module, x)


@settings(max_examples=12, deadline=None)
@given(readout=st.sampled_from(["tokens", "first", "mean"]), causal=st.booleans(), norm_first=st.booleans(),
       layers=st.integers(1, 2), T=st.integers(2, 6), N=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_sequence_first_attention_converts_as_its_batch_first_twin_with_torchs_value_and_gradient(
        readout, causal, norm_first, layers, T, N, seed):
    """nn.TransformerEncoder with batch_first=False on (T, N) token ids, its (max_len, 1, d)
    position table, x[0] or x.mean(0), logits per position (T, N, V): the model its batch-first
    twin converts to, any length and batch (T = N too)."""
    options = {"readout": readout, "causal": causal, "norm_first": norm_first, "layers": layers}
    torch.manual_seed(seed)
    module = SequenceFirst(**options).double()
    torch.manual_seed(seed)
    twin = SequenceFirst(batch_first=True, **options).double()
    ids = torch.randint(0, 8, (T, N))
    converted = Converted.of(module, ids)
    assert converted.batch_axes == (1, 1 if readout == "tokens" else 0)
    assert converted.model.spec == Converted.of(twin, ids.T).model.spec
    _assert_torchs_value_and_gradient(module, ids)


class TransposedAttention(nn.Module):
    """(N, T, d) in, transposed to torch's default (T, N, d) for nn.MultiheadAttention, and back."""

    def __init__(self):
        super().__init__()
        self.attention, self.head = nn.MultiheadAttention(8, 2), nn.Linear(8, 2)

    def forward(self, x):
        x = x.transpose(0, 1)
        x = self.attention(x, x, x, need_weights=False)[0]
        return self.head(x.transpose(0, 1).mean(1))


def test_a_batch_first_input_transposed_for_sequence_first_attention_converts_with_torchs_value_and_gradient():
    torch.manual_seed(0)
    module, x = TransposedAttention().double(), torch.randn(3, 5, 8, dtype=torch.float64)
    converted = Converted.of(module, x)
    assert converted.batch_axes == (0, 0) and "moveaxis" not in converted.model.spec
    _assert_torchs_value_and_gradient(module, x)


def test_a_sequence_first_value_whose_batch_axis_is_merged_is_a_clear_error():
    class Flattened(SequenceFirst):
        def forward(self, src):
            return super().forward(src).view(-1, 8)  # (T N, V): the word language model's

    with pytest.raises(InvalidArgument, match="merges the batch axis with another"):
        from_torch(Flattened(), torch.randint(0, 8, (5, 3)))


def test_the_pytorch_tutorials_transformer_model_converts_verbatim():
    """Sequence first, its (max_len, 1, d) float32 table sliced by x.size(0), the causal mask
    made from len(src) when none is given (the forward's default), a post-norm encoder."""
    import torch_models

    torch.manual_seed(0)
    converted = Converted.of(TransformerModel(8, 8, 2, 16, 2, dropout=0.0), torch.randint(0, 8, (5, 3)))
    assert converted.batch_axes == (1, 1)
    assert converted.model.spec.startswith("seq:5x8:onehot,dense(8),prelu(2.8284271247461903,2.8284271247461903),"
                                           "sinusoid,dropout(0),residual[attention(heads=2,dk=4,dv=4,bias,causal)")
    assert "len" not in vars(torch_models)  # what tracing put in the module's namespace is gone


def test_a_forward_argument_with_a_default_is_read_at_its_default():
    class Optional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x, mask=None, scale: float = 2.0):
            h = torch.relu(self.a(x))
            return self.b(h if mask is None else h * mask) * scale

    torch.manual_seed(0)
    module, x = Optional().double(), torch.randn(5, 3, dtype=torch.float64)
    assert Converted.of(module, x).model.spec == "seq:3:dense(4,bias),relu,dense(2,bias),prelu(2,2)"
    _assert_torchs_value_and_gradient(module, x)


class LearnedPositions(nn.Module):
    """A learned position embedding added to a sequence-first value, (T, 1, d), or a batch-first one, (1, T, d)."""

    def __init__(self, first):
        super().__init__()
        self.first = first
        self.pos = nn.Parameter(torch.randn(5, 1, 8) if first else torch.randn(1, 5, 8))
        layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=not first)
        self.encoder, self.head = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False), nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.encoder(x + self.pos).mean(0 if self.first else 1))


@pytest.mark.parametrize("image", [True, False], ids=["pixels-viewed-as-an-image", "signal-unsqueezed"])
def test_an_input_the_forward_reshapes_first_is_read_in_that_shape(image):
    torch.manual_seed(0)
    module, x = Reshaped(image).double(), torch.randn(5, 36 if image else 8, dtype=torch.float64)
    converted = Converted.of(module, x)
    assert converted.model.spec == ("seq:1x6x6:conv2d(2,3,bias),relu,flatten,dense(2,bias)" if image else
                                    "seq:1x8:conv1d(2,3,bias),relu,flatten,dense(2,bias)")
    assert converted.samples(x).shape == ((5, 1, 6, 6) if image else (5, 1, 8))
    _assert_torchs_value_and_gradient(module, x)


def test_an_unflatten_first_in_a_sequential_is_read_as_the_input_s_shape():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(),
                           nn.Linear(32, 2)).double()
    x = torch.randn(5, 36, dtype=torch.float64)
    assert from_torch(module, x)[0].spec == "seq:1x6x6:conv2d(2,3,bias),relu,flatten,dense(2,bias)"
    _assert_torchs_value_and_gradient(module, x)


@pytest.mark.parametrize("make, x, spec", [
    (Excited, (6, 3, 4, 4), "seq:3x4x4:conv2d(4,3,padding=1,bias),relu,gated[avgpool2d(4),conv2d(2,1,bias),relu,"
                            "conv2d(4,1,bias),sigmoid,upsample2d(4)],mean,dense(2,bias)"),
    # with nn.Sigmoid as EfficientNet's: torch's float64 hardsigmoid backward multiplies by a float32 1/6
    (lambda: ExcitedBlock(scale_activation=nn.Sigmoid), (6, 4, 4, 4),
     "seq:4x4x4:residual[conv2d(8,1),batchnorm(affine,eps=1e-05),relu,conv2d(8,3,padding=1,groups=8),batchnorm(affine,"
     "eps=1e-05),relu,gated[avgpool2d(4),conv2d(2,1,bias),relu,conv2d(8,1,bias),sigmoid,upsample2d(4)],conv2d(4,1),"
     "batchnorm(affine,eps=1e-05)],mean,flatten,dense(3,bias)"),
    (lambda: Excited(timm=True), (6, 3, 4, 4), "seq:3x4x4:conv2d(4,3,padding=1,bias),relu,gated[avgpool2d(4),"
                                               "conv2d(2,1,bias),relu,conv2d(4,1,bias),sigmoid,upsample2d(4)],mean,"
                                               "dense(2,bias)"),
], ids=["squeeze-excitation", "mobilenet-v3-block", "timm-squeeze-excite"])
def test_a_squeeze_and_excitation_is_its_input_gated_by_a_branch_spread_over_the_positions(make, x, spec):
    """torchvision's SqueezeExcitation and timm's SqueezeExcite, verbatim: the global pool
    (a module, or a keepdim mean), read by 1x1 convolutions, keeps its (C, 1, 1) map
    (avgpool2d of the whole map), and ``scale * input`` is the input gated by that branch,
    spread over the positions by a nearest upsampling."""
    torch.manual_seed(0)
    module, x = make().double(), torch.randn(*x, dtype=torch.float64)
    assert from_torch(module, x)[0].spec == spec
    _assert_torchs_value_and_gradient(module, x)
    if "hardsigmoid" not in spec and "batchnorm" in spec:  # MobileNetV3's own Hardsigmoid: the same block
        assert from_torch(ExcitedBlock().double(), x)[0].spec == spec.replace("sigmoid", "hardsigmoid")


def test_a_product_of_values_that_do_not_broadcast_as_a_gate_is_a_one_line_error():
    class ScalarGate(nn.Module):  # one scale for every channel: (N, 1, 1, 1) times (N, 2, 4, 4)
        def __init__(self):
            super().__init__()
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Conv2d(2, 1, 1)

        def forward(self, x):
            return torch.sigmoid(self.fc(self.pool(x))) * x

    with pytest.raises(InvalidArgument, match=r"a product of values of shapes \(3, 1, 1, 1\) and \(3, 2, 4, 4\); "
                                              r"flowlaws converts products of one shape, and a \(N, C, 1, 1\) gate") \
            as error:
        from_torch(ScalarGate(), torch.randn(3, 2, 4, 4))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("norm", [LlamaRMSNorm, MetaRMSNorm], ids=["hugging-face", "meta-llama2c"])
def test_an_rmsnorm_written_out_with_its_float32_casts_is_an_rmsnorm_and_a_gain(norm):
    """x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps), on x cast to float32 and back
    (the norms of Hugging Face's and Meta's Llama, verbatim): rmsnorm(eps) and the gain after
    it. The casts are the identity to flowlaws, which computes in float64: its value and
    gradient equal the module's own graph run without them to 1e-12 (as the conversion's
    check runs it), and the module as written to float32's precision."""
    from flowlaws.torch.conversion import _Replacing, _trace

    torch.manual_seed(0)
    module, x = Llama(d=8, heads=2, norm=norm).double(), torch.randn(4, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        for layer in (module.input_layernorm, module.post_attention_layernorm):
            layer.weight.uniform_(0.5, 1.5)
    converted = Converted.of(module, x)
    assert converted.model.spec.startswith("seq:5x8:residual[rmsnorm(eps=1e-06),scale,attention(")
    out = _Replacing(_trace(module), {}).run(x)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(1).mean()
    loss.backward()
    value, grads = value_and_grad(converted.model, Square(), converted.read(), converted.samples(x), y.numpy())
    theirs = np.concatenate([g.ravel() for g in converted.read(lambda t: t.grad)])
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    assert np.max(np.abs(np.concatenate([g.ravel() for g in grads]) - theirs)) <= 1e-12 * np.max(np.abs(theirs))
    assert torch.allclose(module(x), out, rtol=1e-6, atol=0)  # as written: float32 in the norms


@pytest.mark.parametrize("written", [
    lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5),
    lambda x: x / torch.sqrt(x.square().mean(dim=-1, keepdim=True) + 1e-5),
    lambda x: x * (x * x).mean(-1, keepdim=True).rsqrt(),
    lambda x: x / x.norm(dim=-1, keepdim=True),  # CLIP's features, normalized: an RMSNorm scaled
    lambda x: x / torch.linalg.vector_norm(x, dim=-1, keepdim=True),
], ids=["rsqrt", "sqrt-quotient", "no-eps", "clip-unit-norm", "vector-norm"])
def test_an_rmsnorm_written_any_usual_way_converts(written):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), Applied(written), nn.Linear(4, 2)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    assert "rmsnorm" in from_torch(module, x)[0].spec
    _assert_torchs_value_and_gradient(module, x)


@pytest.mark.parametrize("gain", [True, False])
def test_f_rms_norm_with_a_modules_own_gain_or_none_is_an_rmsnorm(gain):
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)
            self.weight = nn.Parameter(torch.rand(4) + 0.5) if gain else None

        def forward(self, x):
            return self.b(F.rms_norm(self.a(x), (4,), self.weight, 1e-6))

    torch.manual_seed(0)
    module, x = Functional().double(), torch.randn(5, 3, dtype=torch.float64)
    assert from_torch(module, x)[0].spec == f"seq:3:dense(4,bias),rmsnorm({'affine,' if gain else ''}eps=1e-06)," \
                                            "dense(2,bias)"
    _assert_torchs_value_and_gradient(module, x)


def test_a_cast_to_an_integer_dtype_is_no_identity_and_the_check_refuses_it():
    """Casts to a float dtype are the identity to flowlaws (and run so in its check); a
    value made integer by ``type_as`` of an integer buffer is not, and the check finds it."""
    class Truncated(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)
            self.register_buffer("ids", torch.zeros(4, dtype=torch.long))

        def forward(self, x):
            return self.b(self.a(x).type_as(self.ids).to(x.dtype))

    with pytest.raises(InvalidArgument, match="does not reproduce the module's output"):
        from_torch(Truncated().double(), 3 * torch.randn(5, 3, dtype=torch.float64))


@pytest.mark.parametrize("written", [
    lambda x: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True)),  # over the batch
    lambda x: x / torch.linalg.vector_norm(x, ord=1, dim=-1, keepdim=True),  # an L1 norm
], ids=["over-the-batch", "l1"])
def test_an_rms_or_norm_of_another_kind_is_not_an_rmsnorm(written):
    module = nn.Sequential(nn.Linear(3, 4), Applied(written), nn.Linear(4, 2))
    with pytest.raises(InvalidArgument) as error:
        from_torch(module, torch.randn(5, 3))
    assert "\n" not in str(error.value)


class Chunked(nn.Module):
    """A Linear's output (or a ReLU of it) chunked in ``pieces`` along ``dim``, gated."""

    def __init__(self, pieces=2, dim=-1, relu=False):
        super().__init__()
        self.w12, self.w3, self.pieces, self.dim, self.relu = nn.Linear(4, 6), nn.Linear(3, 4), pieces, dim, relu

    def forward(self, x):
        h = torch.relu(self.w12(x)) if self.relu else self.w12(x)
        parts = h.chunk(self.pieces, dim=self.dim)
        return self.w3(F.silu(parts[0]) * parts[1][..., :3])


@pytest.mark.parametrize("options", [{"pieces": 3}, {"relu": True}, {"dim": 1}])
def test_a_chunk_other_than_a_linears_halves_is_a_one_line_error(options):
    with pytest.raises(InvalidArgument, match=r"a chunk or split converts as the two halves of the output units of a "
                                              r"Linear that nothing else reads") as error:
        from_torch(Chunked(**options), torch.randn(2, 6, 4))
    assert "\n" not in str(error.value)


class CustomLinear(nn.Module):
    """A Linear written as people write their own (LoRA's base layer, weight-tied heads):
    parameters of the module, read by ``F.linear`` in its forward."""

    def __init__(self, d_in, d_out, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / d_in ** 0.5)
        self.bias = nn.Parameter(torch.randn(d_out)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


@pytest.mark.parametrize("bias", [True, False])
def test_f_linear_of_a_modules_own_parameters_is_a_dense_layer(bias):
    torch.manual_seed(0)
    module = nn.Sequential(CustomLinear(3, 4, bias), nn.ReLU(), CustomLinear(4, 2, bias)).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    assert from_torch(module, x)[0].spec == f"mlp:3-4-2:relu{':bias' if bias else ''}"
    _assert_torchs_value_and_gradient(module, x)


class Normalized(nn.Module):
    """Features normalized to the unit sphere before a head (a cosine classifier, CLIP's
    embeddings): ``F.normalize(x, dim=-1)``."""

    def __init__(self, p=2.0, dim=-1):
        super().__init__()
        self.a, self.b, self.p, self.dim = nn.Linear(3, 4), nn.Linear(4, 2), p, dim

    def forward(self, x):
        return self.b(F.normalize(self.a(x), p=self.p, dim=self.dim))


def test_f_normalize_over_the_last_axis_is_an_rmsnorm_at_eps_0_scaled_and_keeps_its_scale_law():
    torch.manual_seed(0)
    module, x = Normalized().double(), torch.randn(6, 3, dtype=torch.float64)
    assert from_torch(module, x)[0].spec == "seq:3:dense(4,bias),rmsnorm,prelu(0.5,0.5),dense(2,bias)"
    _assert_torchs_value_and_gradient(module, x)
    found = discover_of(module, x)
    assert found.complete and found.derived == found.lower == found.upper == 1  # ||W||^2 + ||b||^2 of the first
    for p, dim in ((1.0, -1), (2.0, 0)):
        with pytest.raises(InvalidArgument, match=r"flowlaws converts F.normalize with p=2 over the last axis"):
            from_torch(Normalized(p, dim), x.float())


def test_a_learned_position_embedding_on_a_sequence_first_value_is_an_offset():
    torch.manual_seed(0)
    first, x = LearnedPositions(True).double(), torch.randn(5, 3, 8, dtype=torch.float64)
    twin = LearnedPositions(False).double()
    assert Converted.of(first, x).model.spec == Converted.of(twin, x.transpose(0, 1)).model.spec
    assert Converted.of(first, x).model.spec.startswith("seq:5x8:offset,")
    _assert_torchs_value_and_gradient(first, x)


class BufferedPositions(nn.Module):
    """Position embeddings read at a registered buffer of positions, sliced by the length:
    Hugging Face's ``position_ids`` (``arange(T).expand((1, -1))``, read ``[:, :t]``), or a
    plain ``arange(T)`` read ``[:t]``; ``ids`` replaces its values."""

    def __init__(self, hf=True, ids=None, vocabulary=8, d=4, T=6):
        super().__init__()
        self.tok, self.pos, self.hf = nn.Embedding(vocabulary, d), nn.Embedding(T, d), hf
        positions = torch.arange(T) if ids is None else torch.as_tensor(ids)
        self.register_buffer("position_ids", positions.expand((1, -1)) if hf else positions, persistent=False)
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocabulary)

    def forward(self, idx):
        t = idx.size(1)
        pos = self.position_ids[:, :t] if self.hf else self.position_ids[:t]
        return self.head(self.ln(self.tok(idx) + self.pos(pos)))


@pytest.mark.parametrize("hf", [True, False], ids=["position-ids-buffer", "arange-buffer"])
def test_an_embedding_read_at_a_buffer_of_positions_is_a_position_offset(hf):
    torch.manual_seed(0)
    module, x = BufferedPositions(hf).double(), torch.randint(0, 8, (3, 5))
    spec = Converted.of(module, x).model.spec
    assert spec == "seq:5x8:onehot,dense(4),offset,layernorm(affine,eps=1e-05),dense(8,bias)"
    _assert_torchs_value_and_gradient(module, x)
    with pytest.raises(InvalidArgument, match="an Embedding must read the module's input") as caught:
        from_torch(BufferedPositions(hf, ids=[0, 2, 1, 3, 4, 5]), x)  # not the positions in order
    assert "\n" not in str(caught.value)


def test_a_forward_that_keeps_a_value_on_the_module_leaves_the_module_as_it_was():
    """Tracing runs the module's own forward on traced values: what it assigns (a kept mask,
    a cache) is put back as it was."""
    class Keeping(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.kept = nn.Linear(3, 4), nn.Linear(4, 2), None

        def forward(self, x):
            self.kept = torch.relu(self.a(x))
            self.b = self.b  # a child assigned again
            return self.b(self.kept)

    module = Keeping()
    before = dict(vars(module)), dict(module._modules)
    assert from_torch(module, torch.randn(5, 3))[0].spec == "mlp:3-4-2:relu:bias"
    assert module.kept is None and (dict(vars(module)), dict(module._modules)) == before
