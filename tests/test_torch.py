"""The PyTorch bridge against real torch (CPU): conversion, laws, the monitor, pytest."""

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from flowlaws.discover import discover  # noqa: E402
from flowlaws.engine import value_and_grad  # noqa: E402
from flowlaws.errors import InvalidArgument  # noqa: E402
from flowlaws.losses import Square  # noqa: E402
from flowlaws.models.symmetry import LawKind  # noqa: E402
from flowlaws.torch import Converted, LawMonitor, assert_conserved_torch, discover_of, from_torch, laws_of  # noqa: E402


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


def _vgg():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(6 * 2 * 2, 5), nn.ReLU(), nn.Linear(5, 3))


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
    theirs = np.concatenate([_ours_layout(module, name, g) for g in [torch_grads]])
    assert ours.shape == theirs.shape
    assert np.max(np.abs(ours - theirs)) <= 1e-12 * np.max(np.abs(theirs))


def _ours_layout(module, name, grads):
    """torch's gradients in flowlaws' parameter layout (attention heads split and transposed)."""
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


def test_a_difference_a_negation_and_a_sum_over_positions_convert_as_linear_maps():
    assert from_torch(Arithmetic(), torch.randn(2, 5, 3))[0].spec == (
        "seq:5x3:residual[dense(4,bias),relu | dense(4,bias),prelu(-1,-1)],prelu(-1,-1),mean(last),prelu(5,5),"
        "dense(2,bias)")


class MnistNet(nn.Module):
    """pytorch/examples' mnist/main.py Net, at a small size: functional relu, max pool and
    flatten, two dropouts, and log-probabilities out (trained with F.nll_loss)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, 1), nn.Conv2d(4, 8, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(8 * 4 * 4, 16), nn.Linear(16, 10)

    def forward(self, x):
        x = nn.functional.relu(self.conv2(nn.functional.relu(self.conv1(x))))
        x = torch.flatten(self.dropout1(nn.functional.max_pool2d(x, 2)), 1)
        x = self.fc2(self.dropout2(nn.functional.relu(self.fc1(x))))
        return nn.functional.log_softmax(x, dim=1)


def test_a_module_ending_in_log_softmax_has_the_shift_laws_of_its_logits_whatever_the_loss():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 12, 12), torch.randint(0, 10, (8,))
    converted = Converted.of(MnistNet(), x)
    assert converted.normalized == "log_softmax" and converted.model.spec.endswith("dense(10,bias)")
    names = {law.name for law in converted.laws(nn.NLLLoss())}
    assert names == {law.name for law in laws_of(MnistNet(), x, "square")}  # a shift of the logits is free
    assert {"translation unit dense1/softmax.W", "translation layer dense1/softmax.b"} <= names
    for optimizer, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), False),
                               (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = MnistNet()
        monitor = _watched(net, optimizer(net.parameters()), x, 5, lambda out: nn.functional.nll_loss(out, y),
                           loss=nn.NLLLoss())
        assert monitor.records and bool(monitor.flagged) == flagged and not monitor.errors


def test_an_example_input_the_module_cannot_take_is_a_one_line_error_and_prints_nothing(capfd):
    with pytest.raises(InvalidArgument, match=r"Sequential cannot run on example_input of shape \(4, 8\) "
                                              r"\(RuntimeError: mat1 and mat2") as error:
        Converted.of(nn.Sequential(nn.Linear(3, 4)), torch.zeros(4, 8))
    assert "\n" not in str(error.value)
    assert capfd.readouterr() == ("", "")


def test_a_module_torch_fx_cannot_trace_is_a_one_line_error_naming_why():
    class Positions(nn.Module):  # the PyTorch tutorial's PositionalEncoding: a buffer sliced by x.size(1)
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.register_buffer("pe", torch.randn(1, 16, 4))

        def forward(self, x):
            return self.fc((x + self.pe[:, :x.size(1)]).mean(1))

    with pytest.raises(InvalidArgument, match=r"torch.fx cannot trace Positions \(TypeError: slice indices") as error:
        Converted.of(Positions(), torch.randn(2, 5, 4))
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


def test_a_functional_dropout_in_training_keeps_its_unit_laws_under_sgd():
    torch.manual_seed(0)
    module, x = Functional(p=0.5).double(), torch.randn(8, 2, 6, 6, dtype=torch.float64)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    monitor = LawMonitor(module, optimizer, example_input=x)
    for _ in range(4):
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(x), torch.zeros(8, dtype=torch.long)).backward()
        optimizer.step()
    assert monitor.records and not monitor.flagged and not monitor.errors
    assert all(len(r.measured) == 4 for r in monitor.records)


def test_a_rectangular_kernel_and_pool_convert_with_their_values_per_axis():
    module = MODELS["rectangular"][0]()
    assert from_torch(module, torch.randn(2, 2, 5, 6))[0].spec == (
        "seq:2x5x6:conv2d(4,3x1,stride=1x2,padding=1x0,bias),relu,conv2d(3,1x3,padding=0x2,dilation=1x2),relu,"
        "conv2d(2,2x3,bias),maxpool2d(2x1),flatten,dense(2,bias)")


@pytest.mark.parametrize(("module", "fragment"), [
    (nn.Sequential(nn.Linear(3, 8), nn.GELU(approximate="tanh")), r"\(GELU\) is not supported \(approximate='tanh'"),
    (nn.Sequential(nn.Conv2d(3, 4, 1), nn.AvgPool2d(2, divisor_override=1)), r"no divisor_override"),
    (nn.Sequential(nn.Conv2d(3, 4, (2, 3), padding="same")), r"0 \(Conv2d\) is not supported \(padding='same' with "
                                                              "an even kernel"),
    (nn.Sequential(nn.Linear(3, 4), nn.Embedding(4, 2), nn.Linear(4, 2)),
     r"1 \(Embedding\) is not supported \(an Embedding must read the module's input"),
    (nn.Sequential(nn.Conv1d(3, 4, 3, padding_mode="reflect", padding=1)),
     r"0 \(Conv1d\) is not supported \(padding modes other than zeros"),
    (nn.Sequential(nn.MultiheadAttention(3, 1, batch_first=True, add_bias_kv=True)), r"not supported"),
])
def test_an_unsupported_module_is_one_line_naming_its_path_and_type(module, fragment):
    with pytest.raises(InvalidArgument, match=fragment) as error:
        from_torch(module, torch.zeros(4, 3, 8))
    assert "\n" not in str(error.value)


def test_the_models_people_train_convert_to_graph_specs():
    torch.manual_seed(0)
    assert from_torch(BasicBlock(), torch.randn(2, 2, 6, 6))[0].spec == (
        "seq:2x6x6:residual[conv2d(4,3,stride=2,padding=1),batchnorm(affine,eps=1e-05),relu,conv2d(4,3,padding=1),"
        "batchnorm(affine,eps=1e-05) | conv2d(4,1,stride=2),batchnorm(affine,eps=1e-05)],relu,mean,flatten,"
        "dense(3,bias)")
    assert from_torch(SwiGLU(), torch.randn(2, 5, 4))[0].spec == (
        "seq:5x4:gated[dense(6),silu | dense(6)],dense(4),mean(last),dense(2,bias)")
    dropout = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.25), nn.Linear(4, 2))
    assert from_torch(dropout, torch.randn(4, 3))[0].spec == "seq:3:dense(4,bias),relu,dropout(0.25),dense(2,bias)"


def test_a_swiglu_block_from_torch_has_the_laws_discovery_counts():
    found = discover_of(SwiGLU(2, 2), torch.randn(4, 3, 2))
    assert found.count == found.derived == 5  # 2 value units; the 2 outputs' matrix law into the head (3)


def _watched(net, opt, x, steps, objective=lambda out: out.pow(2).mean(), **options):
    """A LawMonitor on ``net`` (``options``: its own) through ``steps`` real training steps
    of ``opt`` on ``x``, minimizing ``objective`` of the output; detached after."""
    monitor = LawMonitor(net, opt, example_input=x, **options)
    for _ in range(steps):
        opt.zero_grad()
        objective(net(x)).backward()
        opt.step()
    monitor.detach()
    return monitor


class TwoPaths(nn.Module):
    """relu(a(x)) + b(x), or a(x) - b(x): branches whose biases trade no shift."""

    def __init__(self, subtract=False):
        super().__init__()
        self.subtract = subtract
        self.a, self.b, self.head = nn.Linear(3, 6), nn.Linear(3, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.a(x) - self.b(x) if self.subtract else torch.relu(self.a(x)) + self.b(x))


@pytest.mark.parametrize("make", [BasicBlock, SwiGLU, lambda: nn.Sequential(
    nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 2)),
    TwoPaths, lambda: TwoPaths(subtract=True)],
    ids=["resnet-downsample", "swiglu", "dropout", "relu-plus-linear", "difference"])
def test_the_monitor_follows_sgd_and_flags_adam_on_the_models_people_train(make):
    torch.manual_seed(0)
    shapes = {BasicBlock: (8, 2, 6, 6), SwiGLU: (8, 5, 4)}
    x = torch.randn(*shapes.get(make, (8, 3)))
    for optimizer, flagged in ((torch.optim.SGD, False), (torch.optim.Adam, True)):
        net = make()
        monitor = _watched(net, optimizer(net.parameters(), lr=0.05), x, 4)
        assert bool(monitor.flagged) == flagged and not monitor.errors


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_centred_plane_law_between_two_layernorms_follows_momentum_and_adamw_departs_from_it(dtype):
    """nn.LayerNorm without affine at eps = 0 twice: the mixing of the first one's centred
    plane is a matrix law C G C (docs/theory.md 7), watched like any other."""
    def make():
        torch.manual_seed(0)
        norm = lambda: nn.LayerNorm(3, elementwise_affine=False, eps=0.0)  # noqa: E731
        return nn.Sequential(nn.Linear(2, 3, bias=False), norm(), nn.Linear(3, 3, bias=False), norm(),
                             nn.Linear(3, 1, bias=False)).to(dtype)

    x = torch.randn(16, 2, dtype=dtype)
    for optimizer, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), False),
                               (lambda p: torch.optim.AdamW(p, lr=0.05), True)):
        net = make()
        monitor = _watched(net, optimizer(net.parameters()), x, 20)
        (centred,) = [r for r in monitor.records if r.law.centred]
        assert centred.status == ("departs" if flagged else "holds") and not monitor.errors


def test_a_law_never_observed_is_unobserved_never_holds():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    monitor = LawMonitor(net, torch.optim.SGD(net.parameters(), lr=0.1), example_input=torch.randn(4, 3))
    assert {r.status for r in monitor.records} == {"unobserved"}
    assert all(law["status"] == "unobserved" for law in monitor.to_json()["laws"])


def test_a_law_whose_one_side_is_frozen_is_measured_and_flagged():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    net[0].weight.requires_grad_(False)
    net[0].bias.requires_grad_(False)
    x = torch.randn(16, 3)
    monitor = _watched(net, torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1), x, 3)
    assert {r.status for r in monitor.records} == {"departs"} and not monitor.errors


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_per_group_learning_rates_are_read_per_group_and_their_drift_predicted(momentum):
    # layers at different learning rates break the laws at first order; the monitor predicts
    # that drift exactly from each group's lr (and a parameter in no group does not move)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(16, 3)
    opt = torch.optim.SGD([{"params": net[0].parameters(), "lr": 0.02}, {"params": net[2].parameters(), "lr": 0.2,
                                                                        "weight_decay": 0.01}],
                          lr=0.1, momentum=momentum)  # net[4] is in no group
    monitor = LawMonitor(net, opt, example_input=x)
    for _ in range(4):
        net.zero_grad()  # the optimizer's zero_grad would leave net[4]'s gradients accumulating
        net(x).pow(2).mean().backward()
        opt.step()
    assert not monitor.flagged and not monitor.errors
    drift = max(abs(sum(r.measured)) for r in monitor.records if r.law.kind == "unit")
    assert drift > 1e-6  # the laws did move: the prediction, not conservation, explains it


@pytest.mark.parametrize("make", [BasicBlock, SwiGLU, lambda: NanoGPT(dropout=0.0, tied=True)],
                         ids=["resnet-downsample", "swiglu", "nanogpt-tied"])
def test_every_model_parameter_is_a_view_of_the_monitor_s_one_vector(make):
    from flowlaws.torch.monitor import _Layout, _positions, _stacked

    torch.manual_seed(0)
    net = make()
    shape = {BasicBlock: (2, 6, 6)}.get(make, (5, 4))
    x = torch.randint(0, 8, (4, 5)) if isinstance(net, NanoGPT) else torch.randn(4, *shape)
    converted = Converted.of(net, x)
    decay = [p for p in net.parameters() if p.dim() > 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 0.1},
                           {"params": [p for p in net.parameters() if p.dim() <= 1]}], lr=0.1)
    layout = _Layout.of(converted, opt)
    assert [group for _, group, _ in layout.runs] == [0, 1]  # each group one run of the vector
    X = torch.zeros(3, layout.size)  # three rows of the vector; the middle one filled
    with torch.no_grad():
        layout.fill(layout.parts(X[1]), layout.params)
    index = torch.arange(layout.size)
    vector = X[1].numpy()
    for k, p in enumerate(converted.tensors(lambda t: t.detach())):
        stacked = _stacked(X, layout.views)(k)
        assert torch.equal(stacked[1], p) and not stacked[0].any() and not stacked[2].any()
        assert np.array_equal(vector[_positions(layout.views[k], index)], p.reshape(-1).numpy())


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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_zero_bias_before_a_batchnorm_is_left_unwatched_not_flagged(dtype):
    # the bias's gradient is 0 as a sum over the batch, so each computed entry is that sum's
    # round-off: SGD once moved it by c times it, and the step's magnitudes (the bias is 0)
    # charged nothing for it, so plain SGD was flagged at step 0
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)).to(dtype)
    nn.init.zeros_(net[0].bias)
    x = torch.randn(8, 12, dtype=dtype)
    monitor = _watched(net, torch.optim.SGD(net.parameters(), lr=0.05), x, 4)
    assert not monitor.flagged and not monitor.errors and monitor.records
    assert [law.name for law in monitor.unwatched] == monitor.to_json()["unwatched"] == ["translation unit dense0/bn0"]
    assert "translation unit dense0/bn0" in [law.name for law in laws_of(net, x)]


class CentredStream(nn.Module):
    """A LayerNorm without affine, then a residual block writing into its centred output."""

    def __init__(self):
        super().__init__()
        self.norm, self.fc1, self.fc2, self.head = (nn.LayerNorm(4, elementwise_affine=False), nn.Linear(4, 3),
                                                    nn.Linear(3, 4), nn.Linear(4, 2))

    def forward(self, x):
        h = self.norm(x)
        return self.head(h + self.fc2(torch.relu(self.fc1(h))))


def test_a_centred_streams_mean_direction_law_is_derived_and_left_unwatched_by_the_monitor():
    torch.manual_seed(0)
    net, x = CentredStream().double(), torch.randn(8, 4, dtype=torch.float64)
    assert any(law.kind == "summed" for law in laws_of(net, x))
    monitor = _watched(net, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9), x, 4)
    assert not monitor.flagged and not monitor.errors and monitor.records
    assert [law.kind for law in monitor.unwatched] == ["summed"]


def test_a_channels_last_model_is_read_in_its_logical_layout():
    # the vector holds every parameter in row-major order whatever its memory layout
    torch.manual_seed(0)
    x = torch.randn(8, 2, 6, 6).to(memory_format=torch.channels_last)
    for optimizer, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), False),
                               (lambda p: torch.optim.Adam(p, lr=0.05), True)):
        net = BasicBlock().to(memory_format=torch.channels_last)
        assert not net.conv1.weight.is_contiguous()
        monitor = _watched(net, optimizer(net.parameters()), x, 4)
        assert bool(monitor.flagged) == flagged and not monitor.errors


def test_a_model_on_two_devices_is_refused_with_the_fix(monkeypatch):
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    elsewhere = torch.zeros(2, device="meta")
    monkeypatch.setattr(Converted, "parameters", property(lambda self: [net[0].weight, elsewhere]))
    with pytest.raises(InvalidArgument, match=r"one device.*move the model to one device"):
        LawMonitor(net, opt, example_input=torch.zeros(2, 3))


@pytest.mark.parametrize("first, joining, runs", [(4, (0, 2), [0, 1]), (0, (4,), [0, 1, None])],
                         ids=["head-then-body", "reordered"])
def test_a_param_group_added_while_training_is_predicted_from_then_on(first, joining, runs):
    # progressive unfreezing: the head trains first, then the body joins with its own lr;
    # "reordered": the new group moves parameters within the vector, whose size stays
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(16, 3)
    opt = torch.optim.SGD(net[first].parameters(), lr=0.1, momentum=0.9)
    monitor = LawMonitor(net, opt, example_input=x)
    for step in range(6):
        if step == 3:
            opt.add_param_group({"params": [p for k in joining for p in net[k].parameters()], "lr": 0.05})
        net.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    assert monitor.steps == 6 and not monitor.errors and not monitor.flagged
    assert [group for _, group, _ in monitor.layout.runs] == runs


class BiasedAttention(nn.Module):
    """nn.MultiheadAttention with its default biases, as people write it."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y, _ = self.attention(x, x, x, need_weights=False)
        return self.head((x + y).mean(1))


def test_multihead_attention_with_its_default_biases_converts_and_is_monitored():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    net = BiasedAttention().double()
    model, params = from_torch(net, x)
    assert model.spec == "seq:3x4:residual[attention(heads=2,dk=2,dv=2,bias)],mean(last),dense(2,bias)"
    out = net(x)
    loss = 0.5 * ((out - 1.0) ** 2).sum(dim=1).mean()
    loss.backward()
    value, _ = value_and_grad(model, Square(), params, x.numpy(), np.ones((6, 2)))
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    for optimizer, flagged in ((torch.optim.SGD, False), (torch.optim.Adam, True)):
        net = BiasedAttention()
        monitor = _watched(net, optimizer(net.parameters(), lr=0.05), x.float(), 3)
        assert bool(monitor.flagged) == flagged and not monitor.errors


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


def test_laws_of_and_discover_of_give_the_laws_and_their_count():
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))
    names = [law.name for law in laws_of(module, torch.zeros(2, 3), loss=nn.CrossEntropyLoss())]
    assert names == ["unit dense0/dense1", "layer dense0/dense1", "translation unit dense1/softmax.W",
                     "translation layer dense1/softmax.b"]
    found = discover_of(module, torch.zeros(2, 3), loss="cross_entropy")
    assert found.complete and found.count == 4 + 4 + 1


def _train(optimizer, steps=12, dtype=torch.float64):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).to(dtype)
    X, y = torch.randn(32, 5, dtype=dtype), torch.randint(0, 3, (32,))
    return _watched(net, optimizer(net.parameters()), X, steps, lambda out: nn.functional.cross_entropy(out, y),
                    loss=nn.CrossEntropyLoss())


@pytest.mark.parametrize("optimizer", [
    lambda p: torch.optim.SGD(p, lr=0.2),
    lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, weight_decay=1e-3),
    lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True),
    lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.5, dampening=0.3, weight_decay=1e-2),
], ids=["sgd", "momentum+decay", "nesterov", "dampening"])
def test_the_monitor_sees_every_law_follow_its_sgd_prediction(optimizer):
    monitor = _train(optimizer)
    assert monitor.steps == 12 and not monitor.errors and not monitor.flagged
    assert all(len(r.effect) == 12 and max(r.effect) <= 1 for r in monitor.records)
    drift = [abs(sum(r.measured)) for r in monitor.records if r.law.family == "rescale"]
    assert max(drift) > 1e-6  # the laws moved (decay, momentum, eta^2 terms) and the prediction followed


@pytest.mark.parametrize("optimizer", [lambda p: torch.optim.Adam(p, lr=1e-2),
                                       lambda p: torch.optim.AdamW(p, lr=1e-2),
                                       lambda p: torch.optim.RMSprop(p, lr=1e-3)], ids=["adam", "adamw", "rmsprop"])
def test_switching_to_a_preconditioned_optimizer_is_flagged_with_step_and_unit(optimizer):
    monitor = _train(optimizer)
    flagged = {r.law.name: r.flagged for r in monitor.flagged}
    step, unit, effect = flagged["unit bn0/dense1"]
    assert step == 0 and len(unit) == 1 and effect > 1e6


def test_a_float32_training_loop_is_judged_with_float32_round_off():
    monitor = _train(lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9), dtype=torch.float32)
    assert not monitor.flagged and not monitor.errors


def test_the_monitor_reports_as_a_table_as_json_and_as_a_plot(tmp_path):
    from rich.console import Console

    monitor = _train(lambda p: torch.optim.Adam(p, lr=1e-2), steps=3)
    console = Console(record=True, width=200)
    console.print(monitor.report())
    assert "departs at step 0" in console.export_text()
    doc = monitor.to_json()
    assert doc["steps"] == 3 and doc["laws"][0]["flagged"]["step"] == 0
    assert monitor.plot(tmp_path / "laws.png").stat().st_size > 0


def test_the_monitor_never_breaks_training_and_refuses_bad_optimizers():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    monitor = LawMonitor(net, opt, example_input=torch.zeros(2, 3))
    opt.step()  # no gradients yet: nothing to observe, nothing raised
    assert monitor.steps == 1 and not monitor.records[0].effect
    with pytest.raises(InvalidArgument, match="maximize=True"):
        LawMonitor(net, torch.optim.SGD(net.parameters(), lr=0.1, maximize=True), example_input=torch.zeros(2, 3))
    with pytest.raises(InvalidArgument, match="LawMonitor predicts SGD, Adam"):
        LawMonitor(net, torch.optim.Adagrad(net.parameters()), example_input=torch.zeros(2, 3))
    monitor.detach()


def test_assert_conserved_torch_passes_sgd_and_names_the_law_adam_breaks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(6, 3)
    assert_conserved_torch(net, x, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    with pytest.raises(AssertionError, match=r"law unit dense0/dense1 violated at the step level"):
        assert_conserved_torch(net, x, torch.optim.Adam(net.parameters(), lr=0.05))


def test_the_readme_example_for_pytorch_runs():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Checking a PyTorch model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 15
    exec(compile(code, "README.md", "exec"), {})


def test_a_layernorm_over_a_conv_output_before_a_conv_is_not_flagged_under_sgd():
    """The soundness issue: the LayerNorm's last-axis scaling once paired position t with the
    next convolution's channel t, and plain SGD was flagged; one c for every position is a
    law (the whole kernel absorbs it), watched and followed."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.LayerNorm(3), nn.ReLU(), nn.Conv1d(3, 2, 3, padding=1),
                        nn.Flatten(), nn.Linear(6, 2)).double()
    X, Y = torch.randn(8, 2, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    monitor = _watched(net, torch.optim.SGD(net.parameters(), lr=0.05), X, 10,
                       lambda out: nn.functional.mse_loss(out, Y))
    assert monitor.steps == 10 and not monitor.errors and not monitor.flagged
    names = {r.law.name for r in monitor.records}
    assert "unit conv1/dense0" in names and "layer ln0/conv1" in names and "unit ln0/conv1" not in names


def _float32_mlp_run(width, make, steps, seed=0):
    """A float32 MLP trained for real on a learnable task (minibatches of 32)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(256, 16, generator=g)
    y = (X @ torch.randn(16, 4, generator=g)).argmax(1)
    net = nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 4))
    opt = make(net.parameters())
    monitor = LawMonitor(net, opt, example_input=X[:32], loss=nn.CrossEntropyLoss())
    for _ in range(steps):
        batch = torch.randint(0, len(X), (32,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(X[batch]), y[batch]).backward()
        opt.step()
    return monitor


@pytest.mark.slow
@pytest.mark.parametrize("make", [
    lambda p: torch.optim.SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
], ids=["sgd", "momentum", "weight-decay", "nesterov"])
def test_float32_sgd_training_is_never_flagged_over_a_thousand_steps(make):
    monitor = _float32_mlp_run(64, make, 1000)
    assert monitor.steps == 1000 and not monitor.flagged and not monitor.errors
    assert max(max(r.effect) for r in monitor.records) < 1e-2  # far inside the round-off of a step


@pytest.mark.parametrize("make", [lambda p: torch.optim.AdamW(p, lr=1e-3), lambda p: torch.optim.Adam(p, lr=1e-3)],
                         ids=["adamw", "adam"])
@pytest.mark.parametrize("width", [64, 160])
def test_float32_adam_is_flagged_within_twenty_steps_at_any_size(make, width):
    monitor = _float32_mlp_run(width, make, 20)
    assert monitor.flagged and all(r.flagged[0] < 20 for r in monitor.flagged)
    assert {r.law.kind for r in monitor.flagged} == {"unit", "layer"}


def test_each_record_says_the_smallest_change_the_monitor_can_see():
    monitor = _float32_mlp_run(32, lambda p: torch.optim.SGD(p, lr=0.1), 3)
    for record in monitor.records:
        assert len(record.resolution) == 3 and all(0 < r < 1e-2 for r in record.resolution)
        assert record.to_json()["resolution"] == record.resolution


def test_every_kth_step_is_watched_when_asked():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(8, 3)
    monitor = _watched(net, opt, x, 7, every=3)
    assert monitor.steps == 7 and all(len(r.measured) == 3 for r in monitor.records)  # steps 0, 3, 6
    with pytest.raises(InvalidArgument, match="every"):
        LawMonitor(net, opt, example_input=x, every=0)


@pytest.mark.parametrize("make", [BasicBlock, SwiGLU], ids=["resnet-downsample", "swiglu"])
def test_float32_adamw_is_flagged_on_the_reference_models_and_sgd_is_not(make):
    torch.manual_seed(0)
    x = torch.randn(*{BasicBlock: (8, 2, 6, 6), SwiGLU: (8, 5, 4)}[make])
    for optimizer, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), False),
                               (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = make()
        monitor = _watched(net, optimizer(net.parameters()), x, 20)
        assert bool(monitor.flagged) == flagged and not monitor.errors


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_every_law_evaluates_on_torch_tensors_as_on_numpy_arrays(data):
    from flowlaws.invariants import laws
    from flowlaws.strategies import architectures, params

    model = data.draw(architectures())
    a, b = data.draw(params(model)), data.draw(params(model))
    ta, tb = (tuple(torch.from_numpy(x.copy()) for x in p) for p in (a, b))
    for law in laws(model, "cross_entropy"):
        for method, args, targs in (("value", (a,), (ta,)), ("first", (a, b), (ta, tb)), ("second", (b,), (tb,)),
                                    ("first_magnitude", (_abs(a), _abs(b)), (_abs(ta), _abs(tb)))):
            want = np.asarray(getattr(law, method)(*args), float)
            got = getattr(law, method)(*targs)
            got = got.numpy() if isinstance(got, torch.Tensor) else np.asarray(got, float)
            scale = np.asarray(law.magnitude(_abs(a), _abs(a)) + law.magnitude(_abs(b), _abs(b)), float)
            assert np.all(np.abs(got - want) <= 1e-12 * (scale + 1)), (law.name, method)


def _abs(params):
    return tuple(abs(p) for p in params)


@st.composite
def _torch_nets(draw):
    """A torch nn.Sequential as people write one: Linear or Conv1d layers (biases or not),
    ReLU, LeakyReLU or none between, a BatchNorm or LayerNorm sometimes, a Linear head."""
    convolutional = draw(st.booleans(), label="conv")
    channels, length = 3, 4  # the input: (3, 4) for a convolution, 12 features for a dense layer
    layers: list = []
    width = channels * length
    for _ in range(draw(st.integers(1, 3), label="hidden layers")):
        out, bias = draw(st.integers(1, 4)), draw(st.booleans())
        if convolutional:
            layers.append(nn.Conv1d(channels, out, 3, padding=1, bias=bias))
            channels, width = out, out * length
        else:
            layers.append(nn.Linear(width, out, bias=bias))
            width = out
        # (a LayerNorm over one feature outputs a constant: docs/torch.md, the monitor's limits)
        norm = draw(st.sampled_from(["none", "batchnorm", "layernorm"] if not convolutional and width > 1
                                    else ["none", "batchnorm"]))
        if norm == "batchnorm":
            layers.append(nn.BatchNorm1d(channels) if convolutional else nn.BatchNorm1d(width))
        elif norm == "layernorm":
            layers.append(nn.LayerNorm(width))
        layers.append(draw(st.sampled_from([nn.ReLU(), nn.LeakyReLU(0.1), nn.Identity()])))
    if convolutional:
        layers.append(nn.Flatten())
    layers.append(nn.Linear(width, 2, bias=draw(st.booleans())))
    return nn.Sequential(*layers).double()


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_sgd_in_param_groups_of_any_settings_is_never_flagged_on_any_net(data):
    # the monitor's one vector, runs by group, in-place rests and strided views, against
    # real torch SGD: every law follows its prediction (momentum, Nesterov, weight decay,
    # dampening, groups at different learning rates and a parameter in no group)
    torch.manual_seed(data.draw(st.integers(0, 100), label="seed"))
    net = data.draw(_torch_nets(), label="net")
    params = list(net.parameters())
    cut = data.draw(st.integers(0, len(params)), label="group boundary")
    kept = data.draw(st.integers(max(cut, 1), len(params)), label="parameters in a group")
    nesterov = data.draw(st.booleans(), label="nesterov")
    momentum = data.draw(st.sampled_from([0.9] if nesterov else [0.0, 0.5, 0.9]), label="momentum")
    dampening = 0.0 if nesterov else data.draw(st.sampled_from([0.0, 0.3]), label="dampening")
    groups = [{"params": params[:cut], "lr": 0.05}, {"params": params[cut:kept], "lr": 0.02,
                                                     "weight_decay": data.draw(st.sampled_from([0.0, 0.01]))}]
    opt = torch.optim.SGD([g for g in groups if g["params"]], lr=0.05, momentum=momentum, dampening=dampening,
                          nesterov=nesterov)
    _never_flagged(net, opt, 4)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_float32_sgd_on_any_net_is_never_flagged_over_twenty_steps(data):
    # the tolerance in float32: the step's round-off at the parameters' precision
    torch.manual_seed(data.draw(st.integers(0, 100), label="seed"))
    net = data.draw(_torch_nets(), label="net").float()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=data.draw(st.sampled_from([0.0, 0.9])),
                          weight_decay=data.draw(st.sampled_from([0.0, 1e-3])))
    _never_flagged(net, opt, 20)


def _never_flagged(net, opt, steps):
    """Train a `_torch_nets` net under ``opt`` for ``steps`` steps, watched: no law flagged
    (a net with no law is refused, and says so)."""
    x = torch.randn(8, *((3, 4) if isinstance(net[0], nn.Conv1d) else (12,)), dtype=net[-1].weight.dtype)
    try:
        monitor = LawMonitor(net, opt, example_input=x)
    except InvalidArgument as error:
        assert "no conservation law" in str(error)
        return
    for _ in range(steps):
        net.zero_grad()  # an optimizer's zero_grad would leave a parameter in no group accumulating
        net(x).pow(2).mean().backward()
        opt.step()
    monitor.detach()
    assert monitor.steps == steps and not monitor.errors
    assert not monitor.flagged, [(r.law.name, r.flagged) for r in monitor.flagged]


class BagOfEmbeddings(nn.Module):
    """A fastText-style text classifier: token embeddings, averaged, then an MLP."""

    def __init__(self, vocabulary=20, padding_idx=None):
        super().__init__()
        self.emb = nn.Embedding(vocabulary, 6, padding_idx=padding_idx)
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, ids):
        return self.fc2(torch.relu(self.fc1(self.emb(ids).mean(1))))


def test_an_embedding_is_a_dense_layer_on_one_hot_tokens_with_torchs_value_and_gradient():
    from flowlaws.torch import one_hot

    torch.manual_seed(0)
    net = BagOfEmbeddings().double()
    ids = torch.randint(0, 20, (16, 5))
    model, params = from_torch(net, ids)
    assert model.spec == "seq:5x20:dense(6),mean(last),dense(8,bias),relu,dense(3,bias)"
    out = net(ids)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(dim=1).mean()
    theirs = torch.autograd.grad(loss, list(net.parameters()))
    value, grads = value_and_grad(model, Square(), params, one_hot(ids, 20), y.detach().numpy())
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    assert np.allclose(grads[0], theirs[0].numpy().T, rtol=0, atol=1e-12 * float(theirs[0].abs().max()))
    assert all(np.allclose(g, t.numpy(), rtol=0, atol=1e-12 * float(t.abs().max()) + 1e-300)
               for g, t in zip(grads[1:], theirs[1:], strict=True))


def test_an_embedding_classifier_keeps_its_laws_under_sgd_and_discovery_proves_their_count():
    torch.manual_seed(0)
    net = BagOfEmbeddings(padding_idx=0)
    ids, y = torch.randint(0, 20, (16, 5)), torch.randint(0, 3, (16,))
    names = {law.name for law in laws_of(net, ids)}
    assert "matrix dense0/dense1" in names  # embedding -> mean -> linear: GL(6) on the embedding's features
    for optimizer, flagged in ((torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9), False),
                               (torch.optim.Adam(net.parameters(), lr=1e-3), True)):
        monitor = _watched(net, optimizer, ids, 5, lambda out: nn.functional.cross_entropy(out, y),
                           loss=nn.CrossEntropyLoss())
        assert bool(monitor.flagged) == flagged and not monitor.errors
    found = discover_of(BagOfEmbeddings(), ids)
    assert found.count == found.derived and found.decided_by == "bounds"
    assert discover(Converted.of(BagOfEmbeddings(), ids).model, degree=0).decided_by == "exact"


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
    from flowlaws.torch import one_hot

    with pytest.raises(InvalidArgument, match=r"token ids in \[0, 5\)"):
        one_hot(torch.tensor([[0, 7]]), 5)


class Encoder(nn.Module):
    """A transformer encoder layer as people write one, then a pooled head."""

    def __init__(self, norm_first, activation="relu", dropout=0.1):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=dropout, batch_first=True,
                                                norm_first=norm_first, activation=activation)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.layer(x).mean(1))


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


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
def test_a_transformer_encoder_layer_keeps_its_laws_under_sgd_with_dropout_and_adam_breaks_them(norm_first):
    torch.manual_seed(0)
    x = torch.randn(6, 5, 8)
    for make, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), False),
                          (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = Encoder(norm_first)
        monitor = _watched(net, make(net.parameters()), x, 5)
        assert any(r.law.name.startswith("gl matrix") for r in monitor.records)
        assert bool(monitor.flagged) == flagged and not monitor.errors


def test_a_transformer_encoder_layer_with_a_mask_is_a_clear_error():
    class Masked(Encoder):
        def forward(self, x):
            return self.head(self.layer(x, is_causal=True).mean(1))

    with pytest.raises(InvalidArgument, match="an attention mask or is_causal"):
        from_torch(Masked(True), torch.randn(2, 5, 8))


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


class TwoAttentions(nn.Module):
    """Two residual self-attentions of width 64, 4 heads each: eight heads in two runs of
    evenly spaced views (each torch parameter's), not one."""

    def __init__(self):
        super().__init__()
        self.first, self.second = (nn.MultiheadAttention(64, 4, batch_first=True) for _ in range(2))
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        x = x + self.first(x, x, x, need_weights=False)[0]
        x = x + self.second(x, x, x, need_weights=False)[0]
        return self.head(x.mean(1))


@pytest.mark.parametrize("formed", [True, False], ids=["products-formed-once", "products-per-parameter"])
@pytest.mark.parametrize("make, x", [
    (lambda: GPT(vocabulary=40, d=64, heads=4), torch.randint(0, 40, (3, 5))),  # heads of one torch parameter
    (lambda: BasicBlock(), torch.randn(4, 2, 6, 6)),
    (TwoAttentions, torch.randn(3, 4, 64)),
], ids=["gpt", "resnet-block", "two-attentions"])
def test_the_monitor_s_sums_equal_every_law_evaluated_slice_by_slice(make, x, formed):
    """The monitor's per-unit sums (heads of one torch parameter summed as one batch, a
    small model's products formed once) against `Law` itself, on random operands."""
    from flowlaws.invariants.sums import CHANNELS, OPERANDS, products

    torch.manual_seed(0)
    net = make().double()
    monitor = LawMonitor(net, torch.optim.SGD(net.parameters(), lr=0.1), example_input=x)
    X = torch.randn(len(OPERANDS), monitor.layout.size, dtype=torch.float64)
    stacked = monitor.stacked(X)
    formed_products = None
    if formed:
        P = products(X, torch.empty(CHANNELS, X.shape[1], dtype=X.dtype))
        formed_products = (monitor.stacked(P), P.index_select(1, monitor.segment))
    Z, Zabs = monitor.sums(stacked, segment=X.index_select(1, monitor.segment), formed=formed_products)
    DR, D, T, R, _ = (tuple(stacked(k)[i].numpy() for k in range(len(monitor.views))) for i in range(5))
    forms = monitor.forms(X)
    checked = 0
    for law in monitor.laws:
        if law.kind is LawKind.MATRIX:  # its whole first-order change (`MatrixForms`)
            expected = law.first(T, DR)
            assert np.allclose(forms[id(law)], expected, rtol=0, atol=1e-12 * (1 + np.abs(expected).max())), law.name
        if law.order != 2:
            continue
        unit, rows = dataclasses.replace(law, kind=LawKind.UNIT), monitor.sums.rows(law)
        expected = np.array([unit.bilinear(T, DR), unit.bilinear(T, R), unit.value(D)])
        scale = 1e-12 * (1 + np.abs(Zabs[rows]).max())
        assert np.allclose(Z[rows, :3].T, expected, rtol=0, atol=scale), law.name
        assert np.allclose(Zabs[rows, 3], unit.magnitude(T, T), rtol=0, atol=scale), law.name
        checked += 1
    assert checked >= 4


def test_a_gpt_style_model_converts_with_causal_attention_and_torchs_value():
    from flowlaws.torch import one_hot

    torch.manual_seed(0)
    net = GPT().double()
    ids = torch.randint(0, 16, (4, 5))
    model, params = from_torch(net, ids)
    assert model.spec == ("seq:5x16:dense(8),residual[layernorm(affine,eps=1e-05),attention(heads=2,dk=4,dv=4,bias,"
                          "causal)],residual[layernorm(affine,eps=1e-05),dense(32,bias),gelu,dense(8,bias)],"
                          "layernorm(affine,eps=1e-05),dense(16)")
    out = net(ids)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).sum(dim=(1, 2)).mean()  # flowlaws' square loss: a sample is (T, vocabulary)
    value, _ = value_and_grad(model, Square(), params, one_hot(ids, 16), y.detach().numpy())
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())


def test_a_gpt_style_model_keeps_its_laws_under_sgd_and_adamw_breaks_them():
    torch.manual_seed(0)
    ids, targets = torch.randint(0, 16, (8, 5)), torch.randint(0, 16, (8, 5))
    for make, flagged in ((lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4), False),
                          (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = GPT()
        monitor = _watched(net, make(net.parameters()), ids, 10, lambda out: _next_tokens(out, targets))
        assert any(r.law.name.startswith("gl matrix") for r in monitor.records)
        assert bool(monitor.flagged) == flagged and not monitor.errors


def _next_tokens(logits, targets):
    """A language model's loss: cross-entropy of every position's logits."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


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


def test_a_tied_head_drops_the_laws_through_the_shared_weight_and_keeps_the_others():
    torch.manual_seed(0)
    untied, tied = GPT(), GPT()
    tied.head.weight = tied.wte.weight  # weight tying, as GPT-2 and nanoGPT do
    ids, targets = torch.randint(0, 16, (8, 5)), torch.randint(0, 16, (8, 5))
    converted = Converted.of(tied, ids)
    last = len(converted.model.param_specs) - 1
    assert converted.tied == {0, last} and not Converted.of(untied, ids).tied
    kept = {law.name for law in laws_of(tied, ids)}
    dropped = {law.name for law in laws_of(untied, ids)} - kept
    assert dropped and all(0 in law.params or last in law.params for law in laws_of(untied, ids)
                           if law.name in dropped)
    for make, flagged in ((lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), False),
                          (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = GPT()
        net.head.weight = net.wte.weight
        monitor = _watched(net, make(net.parameters()), ids, 10, lambda out: _next_tokens(out, targets))
        unwatched = {law.name for law in monitor.unwatched}  # the dead key biases (`Law.batch_sum`)
        assert {r.law.name for r in monitor.records} == kept - unwatched and all(".bk" in n for n in unwatched)
        assert bool(monitor.flagged) == flagged and not monitor.errors


def test_a_compiled_module_is_watched_through_its_original_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    fast = torch.compile(net, backend="eager")  # the eager backend: no C++ toolchain needed
    x = torch.randn(16, 3)
    for make, flagged in ((lambda p: torch.optim.SGD(p, lr=0.1), False),
                          (lambda p: torch.optim.Adam(p, lr=1e-2), True)):
        monitor = _watched(fast, make(fast.parameters()), x, 3)
        assert bool(monitor.flagged) == flagged and not monitor.errors
        assert all(len(r.measured) == 3 for r in monitor.records) and monitor.summed == x.numel()


# --- the reference models people train, written as their authors write them -------------


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
    """nanoGPT's, verbatim (its flash path)."""

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        y = self.resid_dropout(self.c_proj(y))
        return y


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
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class NanoGPT(nn.Module):
    """nanoGPT's GPT with its own blocks, weight tying and forward, less what fx cannot
    trace (the assert on the length, the loss and the inference-time last position)."""

    def __init__(self, dropout=0.1, tied=True, **sizes):
        super().__init__()
        config = GPTConfig(dropout=dropout, **sizes)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
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


REFERENCE = {
    "vit": (ViT, lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
    "mlp-mixer": (Mixer, lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
    "convnext": (lambda: ConvNeXt(kernel=3, layer_scale=0.5), lambda: torch.randn(4, 3, 4, 4, dtype=torch.float64)),
    "nanogpt": (lambda: NanoGPT(dropout=0.0, tied=False), lambda: torch.randint(0, 8, (4, 5))),
    "nanogpt-no-bias": (lambda: NanoGPT(dropout=0.0, tied=False, bias=False, n_layer=2),
                        lambda: torch.randint(0, 8, (4, 5))),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_the_reference_models_convert_with_torchs_value_and_gradient(name):
    from flowlaws.torch import one_hot

    torch.manual_seed(0)
    make, example = REFERENCE[name]
    module, x = make().double(), example()
    converted = Converted.of(module, x)
    out = module(x)
    y = torch.randn_like(out)
    loss = 0.5 * ((out - y) ** 2).flatten(1).sum(1).mean()
    loss.backward()
    inputs = one_hot(x, 8) if name.startswith("nanogpt") else x.numpy()
    value, grads = value_and_grad(converted.model, Square(), converted.read(), inputs, y.detach().numpy())
    theirs = np.concatenate([g.ravel() for g in converted.read(lambda t: t.grad)])
    assert abs(value - loss.item()) <= 1e-12 * abs(loss.item())
    assert np.max(np.abs(np.concatenate([g.ravel() for g in grads]) - theirs)) <= 1e-12 * np.max(np.abs(theirs))


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
        "seq:5x8:dense(4),offset,dropout(0.1),residual[layernorm(affine,eps=1e-05),"  # c_attn, split, heads,
        "attention(heads=2,dk=2,dv=2,bias,causal),dropout(0.1)],residual[layernorm(affine,eps=1e-05),"  # sdpa
        "dense(16,bias),gelu,dense(4,bias),dropout(0.1)],layernorm(affine,eps=1e-05),dense(8)")
    assert from_torch(NanoGPT(bias=False), torch.randint(0, 8, (2, 5)))[0].spec == (  # a gain alone: scale
        "seq:5x8:dense(4),offset,dropout(0.1),residual[layernorm(eps=1e-05),scale,attention(heads=2,dk=2,dv=2,"
        "causal),dropout(0.1)],residual[layernorm(eps=1e-05),scale,dense(16),gelu,dense(4),dropout(0.1)],"
        "layernorm(eps=1e-05),scale,dense(8)")


class _Projected(nn.Module):
    """Self-attention with three projections (as many Hugging Face models write it, less RoPE)."""

    def __init__(self, d=4, heads=2, leak=False, mask=False, kv_heads=None):
        super().__init__()
        kv = d // heads * (kv_heads or heads)
        self.q, self.k, self.v, self.o = nn.Linear(d, d), nn.Linear(d, kv), nn.Linear(d, kv), nn.Linear(d, d)
        self.heads, self.kv_heads, self.leak = heads, kv_heads or heads, leak
        self.register_buffer("allowed", torch.ones(5, 5, dtype=torch.bool) if mask else None)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = (p(x).view(n, t, heads, d // self.heads).transpose(1, 2)
                   for p, heads in ((self.q, self.heads), (self.k, self.kv_heads), (self.v, self.kv_heads)))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.allowed, enable_gqa=self.kv_heads != self.heads)
        y = self.o(y.transpose(1, 2).reshape(n, t, d))
        return self.head((y + q.transpose(1, 2).reshape(n, t, d) if self.leak else y).mean(1))


@pytest.mark.parametrize(("heads", "kv_heads", "spec"), [
    (2, None, "attention(heads=2,dk=2,dv=2,bias)"),
    (4, 2, "attention(heads=4,dk=2,dv=2,kv_heads=2,bias)"),  # enable_gqa: two query heads per key/value head
    (4, 1, "attention(heads=4,dk=2,dv=2,kv_heads=1,bias)"),
])
def test_attention_with_three_projections_converts_with_torchs_value_and_keeps_its_laws_under_sgd(heads, kv_heads,
                                                                                                  spec):
    torch.manual_seed(0)
    d = 2 * heads
    net, x = _Projected(d, heads, kv_heads=kv_heads).double(), torch.randn(3, 5, d, dtype=torch.float64)
    converted = Converted.of(net, x)
    assert converted.model.spec == f"seq:5x{d}:{spec},mean(last),dense(2,bias)"
    value, _ = converted.model.forward(converted.read(), x.numpy())
    assert np.allclose(value, net(x).detach().numpy(), rtol=1e-12, atol=1e-12)
    assert any(law.name.startswith("gl matrix") for law in converted.laws())
    for make, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), False),
                          (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = _Projected(d, heads, kv_heads=kv_heads)
        monitor = _watched(net, make(net.parameters()), x.float(), 5)
        assert bool(monitor.flagged) == flagged and not monitor.errors


@pytest.mark.parametrize(("options", "match"), [({"mask": True}, "a mask"),
                                                ({"leak": True}, "used outside the attention")])
def test_split_attention_that_flowlaws_cannot_read_is_a_one_line_error(options, match):
    with pytest.raises(InvalidArgument, match=match) as error:
        from_torch(_Projected(**options), torch.randn(3, 5, 4))
    assert "\n" not in str(error.value)


def test_the_mlp_mixer_s_stem_and_token_bias_laws_hold_on_the_module_and_are_derived():
    """docs/theory.md 6.1 on the MLP-Mixer: a shift of the stream along its features passes
    every pre-norm block and the final LayerNorm removes it, so the stem's column sums over
    its output channels (12) and its bias sum are conserved, and the token-mixing output
    bias (broadcast along the features) is dead (4): each direction is orthogonal to the
    module's own gradient at random weights, data and losses, and lies in the span of the
    derived laws' gradients, 34 independent (`discover_of`: at most 35)."""
    from torch.func import jacrev

    from flowlaws.torch.discovery import _law_components

    torch.manual_seed(0)
    net = Mixer().double()
    names = [name for name, _ in net.named_parameters()]
    sizes = [p.numel() for p in net.parameters()]
    starts = dict(zip(names, np.cumsum([0, *sizes]), strict=False))
    stem, bias, token = (starts[n] for n in ("stem.weight", "stem.bias", "blocks.0.mlp_tokens.fc2.bias"))
    directions = np.zeros((17, sum(sizes)))
    for tap in range(12):  # stem.weight[c, tap] for every output channel c
        directions[tap, stem + tap + 12 * np.arange(4)] = 1
    directions[12, bias:bias + 4] = 1
    directions[13 + np.arange(4), token + np.arange(4)] = 1
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        out = net(torch.randn(8, 3, 4, 4, dtype=torch.float64))
        net.zero_grad()
        (out * torch.randn_like(out) + out ** 2).sum().backward()
        g = torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy()
        assert np.abs(directions @ g).max() <= 1e-12 * np.abs(g).sum()  # round-off of sums of |g|
    x = torch.randn(4, 3, 4, 4, dtype=torch.float64)
    converted = Converted.of(net, x)
    laws_at, _ = _law_components(net, converted, converted.laws())
    shapes = [p.shape for p in net.parameters()]

    def laws_of_flat(flat):
        parts = torch.split(flat, sizes)
        return laws_at({n: part.reshape(s) for n, part, s in zip(names, parts, shapes, strict=True)})

    rows = jacrev(laws_of_flat)(torch.cat([p.detach().reshape(-1) for p in net.parameters()])).numpy()
    basis = np.linalg.svd(rows)[2][:np.linalg.matrix_rank(rows)]
    outside = directions - directions @ basis.T @ basis
    assert np.linalg.norm(outside, axis=1).max() <= 1e-10  # each a derived law
    assert len(basis) == 34


@pytest.mark.parametrize("name", list(REFERENCE))
def test_the_reference_models_keep_their_laws_under_sgd_and_adamw_breaks_them(name):
    make, example = REFERENCE[name]
    torch.manual_seed(0)
    tokens = name.startswith("nanogpt")
    x = example() if tokens else example().float()
    targets = torch.randint(0, 8, x.shape) if tokens else None
    objective = (lambda out: _next_tokens(out, targets)) if tokens else (lambda out: out.pow(2).mean())
    for optimizer, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4), False),
                               (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = NanoGPT(bias=name == "nanogpt") if tokens else make()  # nanoGPT tied, with its dropout
        monitor = _watched(net, optimizer(net.parameters()), x, 10, objective)
        assert monitor.records and bool(monitor.flagged) == flagged and not monitor.errors


class _Block(nn.Module):
    """torchvision's BasicBlock (a downsampling shortcut where the shape changes), no head."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + identity)


class StemResNet(nn.Module):
    """torchvision's ResNet for ImageNet at a small width: its 7x7 stride-2 stem and 3x3
    stride-2 max pool, two BasicBlocks (the second downsampling), the pool and fc."""

    def __init__(self, width=4):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(_Block(width, width, 1), _Block(width, 2 * width, 2))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(2 * width, 3)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(self.layer1(x)), 1))


def test_a_resnet_with_torchvisions_stem_converts_and_sgd_keeps_its_laws_where_adamw_breaks_them():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 16)
    spec = from_torch(StemResNet(), x)[0].spec
    assert spec.startswith("seq:3x16x16:conv2d(4,7,stride=2,padding=3),batchnorm(affine,eps=1e-05),relu,"
                           "maxpool2d(3,stride=2,padding=1),residual[")
    for optimizer, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4), False),
                               (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        net = StemResNet()
        monitor = _watched(net, optimizer(net.parameters()), x, 5)
        assert monitor.records and bool(monitor.flagged) == flagged and not monitor.errors


class _Appended(nn.Module):  # a token put after the sequence
    def __init__(self):
        super().__init__()
        self.a, self.cls = nn.Linear(3, 3), nn.Parameter(torch.zeros(1, 1, 3))

    def forward(self, x):
        return torch.cat([self.a(x), self.cls.expand(x.shape[0], -1, -1)], dim=1).flatten(1)


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


class _Unprojected(_Projected):  # attention's output summed, not read by a Linear
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
    (_Reversed, (2, 2, 3, 3), "a move of one sample axis"),
    (_Broadcast, (2, 2, 3), r"the parameter p of shape \(3,\) added to a value of shape"),
    (_Feature, (2, 2, 3), r"x\[:, t\] of a \(N, T, d\) sequence"),
    (_Split, (2, 2, 4), "reshapes that merge a sample's trailing axes"),
], ids=["attention-unprojected", "layer-norm-two-axes", "cat-after", "permute-two-axes", "broadcast-parameter",
        "feature-index", "split-view"])
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


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3)), (6, 2, 4, 4)),
    (lambda: nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, 3)), (7, 6)),  # shifts
], ids=["conv-bn", "layernorm"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_steps_judged_in_batches_are_judged_as_one_at_a_time(make, shape, optimizer, monkeypatch):
    """Two monitors on one training run: one judges its steps `batch` at a time (from
    each step's sums), one after every step; a learning rate that changes every step
    charges each step its own round-off. Every step's record is the same, flags included."""
    import flowlaws.torch.monitor as monitor

    torch.manual_seed(0)  # the data too: drawn at collection, some inputs made SGD diverge (a NaN loss)
    net, x = make().double(), torch.randn(shape, dtype=torch.float64)
    make_opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
                "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3)}[optimizer]
    opt = make_opt(net.parameters())
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    batched = LawMonitor(net, opt, example_input=x)
    monkeypatch.setattr(monitor, "BATCH_STEPS", 1)
    single = LawMonitor(net, opt, example_input=x)
    assert batched.batch > 1 and single.batch == 1
    y = torch.randn_like(net(x))
    for _ in range(batched.batch + 3):  # a full batch, then a part of one judged when read
        opt.zero_grad()
        (0.5 * ((net(x) - y) ** 2).sum()).backward()
        opt.step()
        schedule.step()
    assert batched.steps == single.steps and not batched.errors and not single.errors
    for a, b in zip(batched.records, single.records, strict=True):
        assert len(a.measured) == batched.steps and a.flagged == b.flagged, a.law.name
        for field in ("measured", "predicted", "effect", "resolution"):
            assert np.allclose(getattr(a, field), getattr(b, field), rtol=1e-9, atol=1e-300), (a.law.name, field)
    assert bool(batched.flagged) == (optimizer == "adamw")
