"""Discovery from a torch module itself (torch.func): counts for modules flowlaws cannot
convert, and an independent check of the derived laws of those it can."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
nn = torch.nn

from torch_models import (  # noqa: E402
    GPT,
    BasicBlock,
    CausalSelfAttention,
    ConvNeXt,
    ConvNeXtBlock,
    DenseNet,
    Excited,
    ExcitedBlock,
    Forecaster,
    FusedSwiGLU,
    GPTConfig,
    GPTLanguageModel,
    Llama,
    LlamaAttention,
    LlamaRMSNorm,
    MetaRMSNorm,
    Mixer,
    NanoGPT,
    SwiGLU,
    TimmBlock,
    TutorialTransformer,
)

from flowlaws.discover import rank_and_gap  # noqa: E402
from flowlaws.errors import InvalidArgument  # noqa: E402
from flowlaws.torch import Converted, LawMonitor, discover_of, from_torch, laws_of  # noqa: E402
from flowlaws.torch.discovery import (  # noqa: E402
    ModuleProblem,
    _blockwise_rank,
    _law_components,
    _spanning_rest,
    discover_module,
    one_thread,
)


class Flipped(nn.Module):
    """A ReLU layer whose units are reversed (torch.flip, which flowlaws does not convert):
    a permutation commutes with every unit's rescaling, so the 4 unit laws stay."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.b(torch.flip(torch.relu(self.a(x)), dims=(-1,)))


class Stacked(nn.Module):
    """Two ReLU layers stacked on a new axis (torch.stack, not converted): 2 + 2 unit laws."""

    def __init__(self):
        super().__init__()
        self.a, self.c, self.b = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(4, 2)

    def forward(self, x):
        return self.b(torch.stack([torch.relu(self.a(x)), torch.relu(self.c(x))], dim=1).flatten(1))


class Concatenated(Stacked):
    """The same two ReLU layers concatenated (torch.cat, converted as concat[A | B])."""

    def forward(self, x):
        return self.b(torch.cat([torch.relu(self.a(x)), torch.relu(self.c(x))], dim=-1))


@pytest.mark.parametrize("module", [Flipped, Stacked])
def test_a_module_flowlaws_cannot_convert_still_gets_its_count(module):
    found = discover_of(module(), torch.zeros(2, 3))
    assert "not converted" in found.note and found.derived == 0
    assert found.count == 4 and found.decided_by == "stalled"


class Conditional(nn.Module):
    """f(x, t) = W2 relu(W1 x + U t + b), two inputs (a diffusion model's image and
    timestep): one unit law per hidden unit, ||W1[i]||^2 + b_i^2 + ||U[i]||^2 - ||W2[:, i]||^2."""

    def __init__(self):
        super().__init__()
        self.x, self.t, self.out = nn.Linear(3, 3), nn.Linear(2, 3, bias=False), nn.Linear(3, 2)

    def forward(self, x, t):
        return self.out(torch.relu(self.x(x) + self.t(t)))


def test_a_module_of_two_inputs_is_counted_from_the_fields_of_both():
    torch.manual_seed(0)
    found = discover_of(Conditional(), (torch.zeros(2, 3), torch.zeros(2, 2)))
    assert "Transformer decoder" in found.note and found.derived == 0
    assert found.count == 3 and found.decided_by == "stalled"  # U's 6 entries would each be conserved, unread
    with pytest.raises(InvalidArgument, match="discover_of"):  # conversion, laws_of, the monitor: a decoder's only
        laws_of(Conditional(), (torch.zeros(2, 3), torch.zeros(2, 2)))


@pytest.mark.parametrize("norm_first, count", [(False, 55), (True, 52)], ids=["post-norm", "pre-norm"])
def test_a_transformer_decoder_layers_count_on_its_target_and_memory_is_its_derived_laws(norm_first, count):
    """Converted from its two inputs (a decode block, its cross-attention reading the memory):
    every derived law is one of the module's own, and there are no others."""
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, batch_first=True, norm_first=norm_first)
    found = discover_of(layer, (torch.randn(3, 3, 4), torch.randn(3, 4, 4)))
    assert found.complete and found.count == found.derived == count and not found.spurious


def test_a_forecaster_around_nn_transformer_counted_by_blocks_has_exactly_its_derived_laws():
    """A module of two inputs (projections, nn.Transformer, a head), converted side by side."""
    torch.manual_seed(0)
    module = Forecaster(features=4, d=4)
    found = discover_of(module, (torch.randn(3, 4, 4), torch.randn(3, 3, 4)),
                        blocks=["transformer.encoder.layers.0", "transformer.decoder.layers.0"])
    assert found.complete and found.count == found.derived == 107 and not found.spurious


def test_a_whole_transformer_counted_by_blocks_has_exactly_its_derived_laws_the_memory_law_across_them():
    torch.manual_seed(0)
    module = nn.Transformer(4, 2, 1, 1, 6, dropout=0.0, batch_first=True)
    found = discover_of(module, (torch.randn(3, 4, 4), torch.randn(3, 3, 4)),
                        blocks=["encoder.layers.0", "decoder.layers.0"])
    assert found.complete and found.count == found.derived == 95 and not found.spurious
    assert "4 derived laws across them" in found.note  # the memory's among them: encoder.norm against the Wk, Wv


@pytest.mark.parametrize("module, loss, count", [
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3)), "cross_entropy", 9),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)), None, 8),
    (lambda: nn.Sequential(nn.Linear(3, 4, bias=False), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 2)), None, 7),
])
def test_a_converted_modules_own_count_equals_its_derived_laws(module, loss, count):
    torch.manual_seed(0)
    found = discover_of(module(), torch.randn(4, 3), loss=loss)
    assert found.complete and found.count == found.derived == count and found.decided_by == "bounds"


def test_a_downsampling_blocks_batchnorm_biases_trade_a_shift_and_its_count_is_its_derived_laws():
    """torchvision's BasicBlock with its shortcut: bn2's beta and the shortcut BatchNorm's beta
    are added at the sum, so their difference is conserved (4 laws, one per channel; not
    derived before, which left its count undecided at 4 above the derived laws)."""
    torch.manual_seed(0)
    module, x = BasicBlock().double(), torch.randn(4, 2, 6, 6, dtype=torch.float64)
    found = discover_of(module, x, loss=nn.CrossEntropyLoss())
    assert found.complete and found.count == found.derived == 17 and found.decided_by == "bounds"
    nn.functional.cross_entropy(module(x), torch.tensor([0, 1, 2, 0])).backward()
    trade = module.bn2.bias.grad - module.downsample[1].bias.grad  # the law's gradient, by value
    assert torch.all(trade.abs() <= 1e-12 * module.bn2.bias.grad.abs().max())
    assert sum(law.name.endswith("+res0.skip.bn0.b") for law in laws_of(module, x)) == 1


class PositionScale(nn.Module):
    """Tokens through a linear map, a position embedding (a parameter added), ReLU, a layer
    scale, then a dense layer with a bias across the positions of the transposed sequence."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 3, bias=False)
        self.pos = nn.Parameter(torch.randn(1, 2, 3))
        self.gamma = nn.Parameter(torch.rand(3) + 0.5)
        self.mix, self.head = nn.Linear(2, 2), nn.Linear(6, 1)

    def forward(self, x):
        h = self.gamma * torch.relu(self.embed(x) + self.pos)
        return self.head(self.mix(h.transpose(1, 2)).flatten(1))


class ClassToken(nn.Module):
    """A class token put before the embedded sequence, attention, its read-out, a head."""

    def __init__(self):
        super().__init__()
        self.embed, self.cls = nn.Linear(2, 3, bias=False), nn.Parameter(torch.randn(1, 1, 3))
        self.attn, self.head = nn.MultiheadAttention(3, 1, bias=False, batch_first=True), nn.Linear(3, 1)

    def forward(self, x):
        h = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(x)], dim=1)
        return self.head(self.attn(h, h, h, need_weights=False)[0][:, 0])


def test_the_kinds_of_the_models_people_train_keep_their_derived_laws_on_the_modules_own_fields():
    torch.manual_seed(0)
    token = discover_of(ClassToken(), torch.randn(4, 2, 2))  # prepend, attention, token
    assert token.complete and token.count == token.derived == 24 and token.decided_by == "bounds"
    scaled = discover_of(PositionScale(), torch.randn(4, 2, 3))  # offset, scale, moveaxis
    assert scaled.complete and scaled.count == scaled.derived == 7  # with the shared bias's law (docs/theory.md 7)


def test_the_pytorch_tutorials_transformer_has_the_laws_discover_of_counts_on_the_module():
    """Its fixed sinusoidal table breaks the embedding's laws with the first attention, and
    the module's own fields count every law derived after it, and no other."""
    torch.manual_seed(0)
    found = discover_of(TutorialTransformer(nlayers=1), torch.randint(0, 8, (4, 5)))
    assert found.complete and found.count == found.derived == 98


@pytest.mark.parametrize("options", [{"d": 4, "heads": 1}, {"d": 4, "heads": 1, "pairs": True},
                                     {"d": 8, "heads": 2, "kv_heads": 1}])
def test_llama_s_rotary_attention_has_the_laws_discover_of_counts_on_the_module(options):
    """Hugging Face's rotate_half, GPT-J's adjacent pairs, and two query heads reading one
    key/value head by repeat_kv: each pair of Wq's and Wk's columns it rotates is one law
    (2), the values' GL(4) ten; read with the other pairing, or heads not grouped, some
    derived laws would be spurious."""
    torch.manual_seed(0)
    found = discover_of(LlamaAttention(**options), torch.randn(3, 3, options["d"]))
    assert found.complete and found.count == found.derived == 12 and found.decided_by == "bounds"


def test_a_shared_bias_counted_once_per_unit_is_named_spurious():
    """The law of one c for gamma, the shared bias and the head counts each entry of the
    bias once; counted once per unit it scales (a broadcast view), it is no law."""
    torch.manual_seed(0)
    module = PositionScale()

    def balance(per_unit):
        return lambda p: ((p["gamma"] ** 2).sum() + per_unit * (p["mix.bias"] ** 2).sum()
                          - (p["head.weight"] ** 2).sum()).reshape(1)

    for per_unit, spurious in ((1, []), (3, ["broadcast"])):
        found = discover_module(module, torch.randn(4, 2, 3), laws_at=balance(per_unit), law_names=["broadcast"])
        assert found.spurious == spurious


def test_a_law_that_is_not_conserved_is_named_spurious():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    false_law = lambda params: (params["0.weight"] ** 2).sum(dim=1)  # noqa: E731 (the input side alone)
    found = discover_module(module, torch.randn(4, 3), laws_at=false_law, law_names=["false"] * 4)
    assert found.spurious == ["false"] and found.lower == 0 and found.count == 4


def test_a_tied_language_model_keeps_its_derived_laws_as_laws():

    torch.manual_seed(0)
    tied = GPT(vocabulary=6, d=4, heads=1, T=3)
    tied.head.weight = tied.wte.weight
    ids = torch.randint(0, 6, (4, 3))
    found = discover_of(tied, ids, budget=1)  # the derived laws, checked against the module's own fields
    assert found.params == sum(p.numel() for p in tied.parameters())  # the shared weight counted once
    assert not found.spurious and found.lower == found.derived > 0 and laws_of(tied, ids)


@pytest.mark.slow
def test_fused_attention_is_differentiated_by_forward_mode_and_keeps_its_derived_laws():
    torch.manual_seed(0)

    class Block(nn.Module):  # nn.MultiheadAttention calls scaled_dot_product_attention
        def __init__(self):
            super().__init__()
            self.attn, self.head = nn.MultiheadAttention(4, 2, batch_first=True), nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.attn(x, x, x, need_weights=False)[0]).mean(dim=1)

    found = discover_of(Block(), torch.randn(4, 3, 4), budget=4_000)
    assert found.derived == found.lower > 0 and not found.spurious
    assert len(found.rank_by_depth) > 1 and found.rank_by_depth[1] > found.rank_by_depth[0]  # brackets add


def test_bad_input_is_one_clear_error():
    with pytest.raises(InvalidArgument, match=r"torch\.nn\.Module"):
        discover_module(lambda x: x, torch.zeros(2, 3))
    with pytest.raises(InvalidArgument, match="no trainable parameter"):
        discover_module(nn.ReLU(), torch.zeros(2, 3))
    with pytest.raises(InvalidArgument, match="one batch length"):
        discover_of(Conditional(), (torch.zeros(2, 3), torch.zeros(3, 2)))
    with pytest.raises(InvalidArgument, match="a tuple of them"):
        discover_of(Conditional(), (torch.zeros(2, 3), 1.0))
    with pytest.raises(InvalidArgument, match=r"torch has none here \(.*hardsigmoid_backward") as error:
        discover_of(nn.Sequential(nn.Linear(3, 4), nn.Hardsigmoid(), nn.Linear(4, 2)), torch.randn(8, 3))
    assert "\n" not in str(error.value)


def test_discovery_runs_on_one_thread_and_restores_the_callers_setting():
    seen = []

    class Spy(nn.Linear):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return super().forward(x)

    suite = torch.get_num_threads()  # one (conftest.py): two here, so that the pin is seen to act
    torch.set_num_threads(2)
    try:
        discover_module(Spy(3, 2), torch.zeros(2, 3), budget=1)
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(suite)


class Block(nn.Module):
    """A LayerNorm, a ReLU layer and a head: analytic and piecewise parts in one field."""

    def __init__(self):
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)

    def forward(self, x):
        return self.b(torch.relu(self.norm(self.a(x))))


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_brackets_evaluated_in_batches_equal_those_evaluated_one_by_one(data):

    from flowlaws.discover import Work, _bracket_value, bracket

    torch.manual_seed(data.draw(st.integers(0, 100)))
    with one_thread():
        problem = ModuleProblem(Block(), torch.randn(3, 3), cross_entropy=False, seed=0, work=Work(10**6))
        g = problem.generators()
        pick = st.integers(0, len(g) - 1)
        inner = [g[data.draw(pick)] for _ in range(3)]
        if data.draw(st.booleans()):  # depth 2: partners of a bracket
            inner = [bracket(g[data.draw(pick)], b) for b in inner]
        pairs = [(g[data.draw(pick)], b) for b in inner]
        batched = np.stack(problem.bracket_values(pairs))
        alone = np.stack([_bracket_value(u, v, problem.theta) for u, v in pairs])
    assert np.allclose(batched, alone, rtol=1e-12, atol=1e-12 * np.abs(alone).max())


class Normed(nn.Module):
    """A layer, a normalization (a LayerNorm, or a BatchNorm in training), GELU and a head:
    a depth-2 bracket takes the normalization's third derivatives."""

    def __init__(self, norm):
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(3, 4), norm, nn.Linear(4, 2)

    def forward(self, x):
        return self.b(nn.functional.gelu(self.norm(self.a(x))))


@settings(max_examples=6, deadline=None)
@given(norm=st.sampled_from(["layernorm", "batchnorm"]), seed=st.integers(0, 100))
def test_depth_2_brackets_through_a_normalization_are_third_derivatives_right(norm, seed):
    """[g_a, [g_b, g_c]](theta0) as discovery computes it (forward over forward over reverse)
    against Richardson's central differences of [g_b, g_c] taken in reverse mode twice
    (torch's second derivatives of its fused norms are right; from the third on they are
    not: without `CompositeNorms` the two differed by 20 to 50%); and every derived law's
    gradient is orthogonal to it, as to any field of the algebra."""
    from torch.func import vjp

    from flowlaws.discover import Work, bracket

    torch.manual_seed(seed)
    module = Normed(nn.LayerNorm(4) if norm == "layernorm" else nn.BatchNorm1d(4))
    x = torch.randn(6, 3)
    with one_thread():
        problem = ModuleProblem(module, x, cross_entropy=False, seed=seed, work=Work(10**6))
        g, theta = problem.generators(), problem.theta
        a, b, c = (problem._generator(*g[k].weights) for k in (0, 1, 2))
        (value,) = problem.bracket_values([(g[0], bracket(g[1], g[2]))])

        def inner(t):  # [g_b, g_c] = H_c g_b - H_b g_c, reverse over reverse
            return vjp(c, t)[1](b(t))[0] - vjp(b, t)[1](c(t))[0]

        def along(u, step):  # D[g_b, g_c][u], by a central difference
            return (inner(theta + step * u) - inner(theta - step * u)) / (2 * step)

        u = a(theta)
        step = 1e-4 * theta.norm() / u.norm()
        richardson = (4 * along(u, step / 2) - along(u, step)) / 3  # error O(step^4)
        expected = (richardson - vjp(a, theta)[1](inner(theta))[0]).numpy()
        converted = Converted.of(module, x)
        laws_at, *_ = _law_components(module, converted, converted.laws())
        rows = problem.law_rows(laws_at)
    assert np.allclose(value, expected, rtol=0, atol=1e-7 * np.abs(expected).max())
    cosines = np.abs(rows @ value) / (np.linalg.norm(rows, axis=1) * np.linalg.norm(value))
    assert len(rows) and cosines.max() < 1e-10


def test_brackets_are_charged_their_evaluations_and_stop_where_the_budget_does():
    from flowlaws.discover import Work

    with one_thread():
        problem = ModuleProblem(Block(), torch.randn(3, 3), cross_entropy=False, seed=0, work=Work(10**6))
        g = problem.generators()
        cost = 3  # a depth-1 bracket: a field, and the forward derivatives of two (each of one batch)
        problem.work.spent = problem.work.budget - (5 * cost - 1)  # room for the 5th to start, not a 6th
        assert len(problem.bracket_values([(g[0], g[k]) for k in range(1, 9)])) == 5
        assert problem.work.exhausted and problem.bracket_values([(g[0], g[1])]) == []


@pytest.mark.parametrize("tied, flash, count", [(True, True, 55), (False, True, 70), (True, False, 55)])
def test_nanogpt_counted_by_blocks_has_exactly_its_derived_laws_tied_or_not(tied, flash, count):
    """Its rest (the embeddings, the final LayerNorm, the head), counted alone, has the column
    sums of wte less those of wpe (docs/theory.md 6.7), kept through the tie (undecided, 51
    derived against 55, before they were derived); its manual attention path (no flash) is
    counted from the module alone, with the laws its conversion derives."""
    torch.manual_seed(0)
    found = discover_of(NanoGPT(dropout=0.0, tied=tied, flash=flash), torch.randint(0, 8, (6, 5)),
                        torch.nn.CrossEntropyLoss(), blocks=["transformer.h.0"])
    assert found.decided_by == "blocks" and found.count == found.derived == count


@pytest.mark.parametrize("qkv_bias, count", [(False, 21), (True, 25)])
def test_timms_block_alone_has_exactly_its_derived_laws_the_stream_biases_trade_included(qkv_bias, count):
    """A pre-norm block whose output is the stream itself: its attention's output bias and
    its MLP's last bias trade c 1 (no norm after them removes it: docs/theory.md 6.1), the
    one law of 21 (25) not derived before."""
    torch.manual_seed(0)
    found = discover_of(TimmBlock(4, qkv_bias=qkv_bias).double(), torch.randn(6, 5, 4, dtype=torch.float64))
    assert found.count == found.derived == count


def test_lets_build_gpt_counted_by_blocks_has_exactly_its_derived_laws():
    """Karpathy's GPT (heads as modules, the projection's bias alone), at torch's default
    initialization: 83 laws, all derived. (At the lecture's own std 0.02 the attention's
    fields are about 1e-4 of the others and the count stays undecided within its budget:
    docs/torch.md.)"""
    torch.manual_seed(0)
    net = GPTLanguageModel().double()
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    found = discover_of(net, torch.randint(0, 8, (6, 5)), torch.nn.CrossEntropyLoss(), blocks=["blocks.0"])
    assert found.decided_by == "blocks" and found.count == found.derived == 83


@pytest.mark.slow
@pytest.mark.parametrize("eps, count", [(0.1, 26), (0.0, 27)])
def test_the_convnext_by_blocks_has_exactly_its_derived_laws_where_its_norms_eps_is_not_round_off(eps, count):
    """At ConvNeXt's own eps = 1e-6 the block's LayerNorm breaks the depthwise
    convolution's scale at order eps / var: a direction of the fields 1e-6 of the others,
    which no rank tells from round-off (undecided: ranks [154, 189, 191] of 200, gap 5.3).
    At eps = 0.1 the block has 9 laws, all derived (26 in the model); at eps = 0 the scale
    is a symmetry, its law derived: 10 (27). docs/torch.md, "By blocks"."""
    torch.manual_seed(0)
    net = ConvNeXt(kernel=3, layer_scale=0.5).double()
    net.block.norm.eps = eps
    found = discover_of(net, torch.randn(4, 3, 4, 4, dtype=torch.float64), blocks=ConvNeXtBlock)
    assert found.decided_by == "blocks" and found.count == found.derived == count


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_nanogpts_attention_keeps_its_derived_laws_and_they_are_all_of_the_modules_own(dropout):
    """nanoGPT's CausalSelfAttention (its flash path: c_attn split, heads, is_causal), read by
    a mean and a head: per head GL(dk) and GL(dv), and GL(d) of the output through the mean
    (its dropout_p reads the module's training flag: discovery runs it in eval mode)."""

    class Attending(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = CausalSelfAttention(GPTConfig(n_embd=4, n_head=2, dropout=dropout, bias=False))
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.attn(x).mean(1))

    torch.manual_seed(0)
    found = discover_of(Attending(), torch.randn(6, 3, 4))
    if not dropout:
        assert found.complete and found.count == found.derived == 22 and found.decided_by == "bounds"
    else:  # discovery runs without dropout; a training step's mask per entry breaks GL(d) (10 components)
        assert found.upper == 22 and found.lower == found.derived == 16 and not found.spurious  # for its unit law (4)


def test_the_shared_bias_law_is_monitored_and_kept_by_sgd_and_adamw_breaks_it():

    for make, flagged in ((lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4), False),
                          (lambda p: torch.optim.AdamW(p, lr=1e-3), True)):
        torch.manual_seed(0)
        net, x = PositionScale(), torch.randn(16, 2, 3)
        opt = make(net.parameters())
        monitor = LawMonitor(net, opt, example_input=x)
        for _ in range(50):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
        shared = next(r for r in monitor.records if r.law.name == "layer scale0/dense1/dense2")  # the bias whole
        assert (shared.flagged is not None) == flagged and bool(monitor.flagged) == flagged and not monitor.errors


def test_a_swiglu_block_from_torch_has_the_laws_discovery_counts():
    found = discover_of(SwiGLU(2, 2), torch.randn(4, 3, 2))
    assert found.count == found.derived == 5  # 2 value units; the 2 outputs' matrix law into the head (3)


@pytest.mark.parametrize("split", [False, True], ids=["chunk", "split"])
def test_a_fused_swiglu_s_halves_are_not_tied_and_keep_the_laws_discover_of_counts(split):
    """DINOv2's SwiGLUFFN: w12's two halves are disjoint rows of one parameter, two layers
    that share no entry, so their value units' laws with w3 stand (2 here)."""
    module, x = FusedSwiGLU(2, 2, split=split), torch.randn(4, 3, 2)
    assert not Converted.of(module, x).tied
    found = discover_of(module, x)
    assert found.complete and found.count == found.derived == 2


@pytest.mark.parametrize("make, x, count", [
    (Excited, (6, 3, 4, 4), 6),  # the conv's rows with the head's and fc1's columns; fc1/fc2 across the ReLU
    (lambda: ExcitedBlock(scale_activation=nn.Sigmoid), (6, 4, 4, 4), 18),
], ids=["squeeze-excitation", "mobilenet-v3-block"])
def test_a_squeeze_and_excitation_keeps_the_laws_discover_of_counts(make, x, count):
    """A channel scaling passes torchvision's SqueezeExcitation: x carries it, and fc1's
    columns absorb it in the scale's branch, so the law of the layer before reads fc1 too."""
    torch.manual_seed(0)
    found = discover_of(make().double(), torch.randn(*x, dtype=torch.float64))
    assert found.complete and found.count == found.derived == count


@pytest.mark.parametrize("norm", [nn.RMSNorm, LlamaRMSNorm, MetaRMSNorm], ids=["torch", "hugging-face", "meta"])
def test_a_llama_layer_s_count_is_the_same_whichever_rmsnorm_it_is_written_with(norm):
    """nn.RMSNorm, or written out with float32 casts (Hugging Face's, Meta's): 24 = 24."""
    torch.manual_seed(0)
    module = Llama(d=4, heads=2, norm=norm).double()
    with torch.no_grad():
        for layer in (module.input_layernorm, module.post_attention_layernorm):
            layer.weight.uniform_(0.5, 1.5)
    found = discover_of(module, torch.randn(4, 5, 4, dtype=torch.float64))
    assert found.complete and found.count == found.derived == 24


def test_laws_of_and_discover_of_give_the_laws_and_their_count():
    module = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3))
    names = [law.name for law in laws_of(module, torch.zeros(2, 3), loss=nn.CrossEntropyLoss())]
    assert names == ["unit dense0/dense1", "layer dense0/dense1", "translation unit dense1/softmax.W",
                     "translation layer dense1/softmax.b"]
    found = discover_of(module, torch.zeros(2, 3), loss="cross_entropy")
    assert found.complete and found.count == 4 + 4 + 1


def test_the_mlp_mixer_s_stem_and_token_bias_laws_hold_on_the_module_and_are_derived():
    """docs/theory.md 6.1 on the MLP-Mixer: a shift of the stream along its features passes
    every pre-norm block and the final LayerNorm removes it, so the stem's column sums over
    its output channels (12) and its bias sum are conserved, and the token-mixing output
    bias (broadcast along the features) is dead (4): each direction is orthogonal to the
    module's own gradient at random weights, data and losses, and lies in the span of the
    derived laws' gradients, 35 independent (with the token LayerNorm's layer law of the
    next test; `discover_of`: at most 35)."""
    from torch.func import jacrev


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
    laws_at, *_ = _law_components(net, converted, converted.laws())
    shapes = [p.shape for p in net.parameters()]

    def laws_of_flat(flat):
        parts = torch.split(flat, sizes)
        return laws_at({n: part.reshape(s) for n, part, s in zip(names, parts, shapes, strict=True)})

    rows = jacrev(laws_of_flat)(torch.cat([p.detach().reshape(-1) for p in net.parameters()])).numpy()
    basis = np.linalg.svd(rows)[2][:np.linalg.matrix_rank(rows)]
    outside = directions - directions @ basis.T @ basis
    assert np.linalg.norm(outside, axis=1).max() <= 1e-10  # each a derived law
    assert len(basis) == 35


def test_the_mlp_mixer_s_35th_law_trades_the_token_norms_affine_against_the_token_mlps_first_weight():
    """The Mixer's 35th law (discover_of: at most 35; by blocks, in its block; derived since
    2026-12-05, `Dense.absorbs_whole`): ||gamma_1||^2 + ||beta_1||^2 - ||W_fc1||^2 of the
    token-mixing LayerNorm and the token MLP's first weight. One c for every channel scales
    gamma_1 and beta_1 (the whole LayerNorm output) and 1/c the token MLP's weight, which
    reads the transposed sequence; a c per channel is no symmetry (W_fc1 is shared by the
    channels). Checked by value at generic weights (beta != 0), with the per-channel form as
    the negative control, and found among the derived laws by name."""
    torch.manual_seed(1)
    net = Mixer().double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    block = net.blocks[0]
    gamma, beta, W = block.norm1.weight, block.norm1.bias, block.mlp_tokens.fc1.weight
    for _ in range(3):
        out = net(torch.randn(6, 3, 4, 4, dtype=torch.float64))
        net.zero_grad()
        (out * torch.randn_like(out) + out ** 2).sum().backward()
        terms = torch.cat([gamma * gamma.grad, beta * beta.grad, -(W * W.grad).reshape(-1)])
        assert terms.sum().abs() <= 1e-13 * terms.abs().sum()  # <grad Q, grad L> = 0: a law
        per_channel = gamma * gamma.grad + beta * beta.grad
        assert per_channel.abs().max() > 1e-3 * terms.abs().sum()  # per channel: no law
    names = [law.name for law in laws_of(net, torch.randn(4, 3, 4, 4, dtype=torch.float64))]
    assert "layer res0.ln0/res0.dense0" in names and "unit res0.ln0/res0.dense0" not in names  # one c for all


def test_a_relu6_has_a_relus_laws_where_nothing_saturates_and_none_where_its_data_do():
    """discover_of counts the laws at data like the example: below 6 a ReLU6 is a ReLU, so
    its three unit laws hold there (and only there); inputs a hundred times larger saturate
    every unit on some sample, and no law is left. flowlaws derives none: its laws hold for
    any data (docs/theory.md 1)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU6(), nn.Linear(3, 2)).double()
    small, large = torch.randn(5, 2, dtype=torch.float64), 100 * torch.randn(5, 2, dtype=torch.float64)
    assert (net[0](small) < 6).all() and (net[0](large) > 6).any(0).all()
    assert laws_of(net, small) == []
    assert discover_of(net, small).count == 3
    assert discover_of(net, large).count == 0


def test_a_glu_is_a_gate_of_a_linears_halves_whose_laws_discover_of_counts_from_the_module():
    """nn.GLU after a Linear, a * sigmoid(b) of its output's halves: the a half's units trade
    scale with the next Linear's columns (2 unit laws), and discover_of's count from the
    module itself meets them: decided by the bounds."""
    torch.manual_seed(0)
    net, x = nn.Sequential(nn.Linear(3, 4), nn.GLU(), nn.Linear(2, 2)).double(), torch.randn(6, 3, dtype=torch.float64)
    assert from_torch(net, x)[0].spec == "seq:3:gated[dense(2,bias) | dense(2,bias),sigmoid],dense(2,bias)"
    found = discover_of(net, x)
    assert found.count == found.derived == 2 and found.decided_by == "bounds" and not found.spurious


@pytest.mark.parametrize("bias", [True, False])
def test_a_transposed_convolutions_laws_meet_discover_of_s_count_only_with_its_bias(bias):
    """ConvTranspose1d(kernel 2, stride 2): each input position scatters to two outputs
    through taps 0 and 1, which never meet. With a bias shared by both, output channel o
    trades scale with the Linear's columns of its positions (2 laws, every one there is);
    without one each tap class trades alone: discover_of counts 4, flowlaws derives 2 (the
    family laws-complete sets aside, docs/theory.md 6)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.ConvTranspose1d(2, 2, 2, stride=2, bias=bias), nn.ReLU(), nn.Flatten(),
                        nn.Linear(12, 2)).double()
    found = discover_of(net, torch.randn(4, 2, 3, dtype=torch.float64))
    assert found.derived == 2 and not found.spurious
    assert found.count == (2 if bias else 4)


@pytest.mark.parametrize("module, count", [(Concatenated, 4), (DenseNet, 12)], ids=["two-relu-layers", "densenet"])
def test_concatenated_branches_have_the_laws_discover_of_counts_on_the_module(module, count):
    """torch.cat of two computed values converts (concat[A | B]; a DenseNet layer's cat(x,
    f(x)) twice): each branch's units trade scale with the reader's columns of their range,
    and the module's own count (torch.func, no conversion) is exactly the derived laws."""
    torch.manual_seed(0)
    net = module().double()
    x = torch.randn(4, *((3,) if module is Concatenated else (1, 5)), dtype=torch.float64)
    assert "concat[" in from_torch(net, x)[0].spec
    found = discover_of(net, x)
    assert found.complete and found.count == found.derived == count and not found.spurious


class Residual(nn.Module):
    """x + W2 relu(W1 x + b1) + b2: a block whose 5 unit laws are its own."""

    def __init__(self, d=4, hidden=5):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def residual_mlp(d=4, hidden=5, blocks=2):
    """A stem of 3 inputs (narrower than the stream), residual blocks, a ReLU and a head."""
    return nn.Sequential(nn.Linear(3, d), *(Residual(d, hidden) for _ in range(blocks)), nn.ReLU(), nn.Linear(d, 2))


def test_a_model_counted_by_blocks_has_the_count_of_the_whole_model():
    torch.manual_seed(0)
    module, x = residual_mlp(), torch.randn(4, 3)
    whole, by_blocks = discover_of(module, x), discover_of(module, x, blocks=Residual)
    assert whole.count == by_blocks.count == by_blocks.lower == 14 and by_blocks.decided_by == "blocks"
    counts = {name: (part.count, part.lower) for name, part in by_blocks.blocks}
    assert counts == {"1": (5, 5), "2": (5, 5), "rest": (0, 0)}  # and 4 across: the stem's units and the head's
    assert [name for name, part in by_blocks.blocks if "shares" in part.note] == ["1", "2"]  # their fields shared
    small = discover_of(module, x, blocks=Residual, budget=40)  # under the 57 generators a run takes: not shared
    assert not any("shares" in part.note for _, part in small.blocks)
    assert "4 derived laws across them" in by_blocks.note
    assert by_blocks.to_json()["blocks"][0]["block"] == "1"
    assert [name for name, _ in discover_of(module, x, blocks=["1", "2"]).blocks] == ["1", "2", "rest"]


@settings(max_examples=4, deadline=None)
@given(d=st.integers(2, 4), hidden=st.integers(1, 4), blocks=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_a_block_alone_keeps_every_law_derived_within_it(d, hidden, blocks, seed):
    """Alone, a block has at least the laws it has in the model: every derived law within
    it stays orthogonal to its fields, and its upper bound is never below them. A count
    decided by blocks lies within the whole model's bounds (whose upper bound is the count
    at its own point: a ReLU net at initialization may have more there, docs/torch.md)."""
    torch.manual_seed(seed)
    module, x = residual_mlp(d, hidden, blocks), torch.randn(4, 3)
    by_blocks, whole = discover_of(module, x, blocks=Residual), discover_of(module, x)
    assert not by_blocks.spurious and by_blocks.lower == whole.lower
    assert all(part.upper is None or part.upper >= part.lower for _, part in by_blocks.blocks)
    if by_blocks.decided_by:
        assert whole.lower <= by_blocks.count and (whole.upper is None or by_blocks.count <= whole.upper)


@settings(max_examples=4, deadline=None)
@given(d=st.integers(2, 4), hidden=st.integers(1, 4), seed=st.integers(0, 2**16))
@example(d=2, hidden=3, seed=2996)  # a block alone stalls at 4 laws; its shared fields prove its derived 3
def test_blocks_decided_from_shared_fields_have_a_count_the_whole_model_allows(d, hidden, seed):
    """Blocks that move together give each block fields of its own: a block decided from
    them has exactly its derived laws within it (the bounds met), no more than its upper
    bound counted alone (its neighbours at fresh draws), and the total lies within the
    whole model's bounds."""
    from flowlaws.discover import Work
    from flowlaws.torch.discovery import OTHERS, _blocks, _discovered, _fresh_copy, _twin

    torch.manual_seed(seed)
    module, x = residual_mlp(d, hidden, 2), torch.randn(4, 3)
    found, whole = discover_of(module, x, blocks=Residual), discover_of(module, x)
    shared = {name: part for name, part in found.blocks if "shares" in part.note}
    twin = _twin(module)
    fresh = [_fresh_copy(twin, 0, draw) for draw in range(1, OTHERS)]
    for path, names in _blocks(module, Residual):
        if path in shared:
            assert shared[path].count == shared[path].lower == shared[path].derived
            alone = _discovered(twin, x, False, None, [], 0, Work(10**5), 0.0, (), free=names, fresh=fresh)
            assert alone.upper is not None and alone.upper >= shared[path].count
    if found.decided_by:
        assert whole.lower <= found.count and (whole.upper is None or found.count <= whole.upper)


def test_the_blocks_moved_together_are_consecutive_and_fit_the_memory_plan():
    from flowlaws.discover import MEMORY
    from flowlaws.torch.discovery import _runs

    sizes = [4192] * 40 + [10**6] + [100] * 3 + [80, 80, 248]
    runs = _runs(sizes)
    assert [b for run in runs for b in run] == list(range(len(sizes)))
    assert all(len({sizes[b] for b in run}) == 1 for run in runs)  # repeated blocks only
    assert all(len(run) == 1 or 8 * (sizes[run[0]] + 8) * sizes[run[0]] * len(run) <= MEMORY / 8 for run in runs)
    assert [len(run) for run in runs[-4:]] == [1, 3, 2, 1]
    assert len(runs) > 5  # the 40 blocks of 4,192 split by the plan


def test_a_block_whose_derived_laws_miss_one_is_left_undecided():
    """Alone, block 1 has 5 laws; told of 4 of them, its bounds do not meet, so the count
    is undecided rather than one short."""
    from flowlaws.torch.discovery import _blocks, _by_blocks

    torch.manual_seed(0)
    module, x = residual_mlp(), torch.randn(4, 3)
    values = {name: p.detach() for name, p in module.named_parameters()}  # those not moving: laws_at's contract
    units = lambda p, name, n: ((p[f"{name}.fc1.weight"] ** 2).sum(1) + p[f"{name}.fc1.bias"] ** 2  # noqa: E731
                                - (p[f"{name}.fc2.weight"] ** 2).sum(0))[:n]

    def laws_at(p, only=None):  # (`_law_components`' protocol: the components ``only``)
        every = torch.cat([units({**values, **p}, "1", 4), units({**values, **p}, "2", 5)])
        return every if only is None else every[torch.as_tensor(only)]

    found = _by_blocks(module, x, _blocks(module, Residual), cross_entropy=False, laws_at=laws_at,
                       law_names=["1"] * 4 + ["2"] * 5, seed=0, budget=10**5, quiet=())
    parts = dict(found.blocks)
    assert (parts["1"].upper, parts["1"].lower) == (5, 4) and (parts["2"].upper, parts["2"].lower) == (5, 5)
    assert found.count is None and "undecided within: 1" in found.note


def test_bad_blocks_are_one_clear_error():
    module, x = residual_mlp(), torch.randn(4, 3)
    for blocks, match in (("1", "list of submodule paths"), (["9"], "'9' is no submodule"),
                          (["1", "1"], "overlaps"), (nn.Conv1d, "no submodule of Sequential is a Conv1d"),
                          ([""], "'' is no submodule")):
        with pytest.raises(InvalidArgument, match=match):
            discover_of(module, x, blocks=blocks)


class FlippedResidual(Residual):
    """A residual block whose hidden units are reversed (torch.flip: not converted)."""

    def forward(self, x):
        return x + self.fc2(torch.flip(torch.relu(self.fc1(x)), dims=(-1,)))


def test_a_model_that_does_not_convert_gets_each_blocks_count_and_no_total():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 4), FlippedResidual(), nn.ReLU(), nn.Linear(4, 2))
    found = discover_of(module, torch.randn(4, 3), blocks=FlippedResidual)
    assert found.count is None and found.upper is None and found.lower == 0
    assert "the module does not convert" in found.note and "not converted" in found.note
    parts = dict(found.blocks)
    assert parts["1"].count == 5 and parts["1"].decided_by == "stalled"  # its 5 unit laws, numerically


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_law_rows_ranked_block_by_block_have_the_rank_of_the_whole_matrix(data):
    """Rows within blocks (block-diagonal, of any rank) and rows across them (a combination
    of those, which adds nothing, or a new direction): one SVD per block gives the rank of
    the whole."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    sizes = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    columns = np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])
    rows, alone = [], []
    for block, cols in enumerate(columns):
        basis = rng.normal(size=(data.draw(st.integers(0, len(cols))), len(cols)))
        for _ in range(data.draw(st.integers(0, 4))):
            row = np.zeros(sum(sizes))
            row[cols] = rng.normal(size=len(basis)) @ basis
            rows.append(row)
            alone.append(block)
    within = np.array(rows).reshape(-1, sum(sizes))
    for new in data.draw(st.lists(st.booleans(), max_size=3)):
        rows.append(rng.normal(size=sum(sizes)) if new else rng.normal(size=len(within)) @ within)
        alone.append(-1)
    rows = np.array(rows).reshape(-1, sum(sizes))
    alone = np.array(alone, dtype=int)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows))), dtype=bool)
    local = [(np.arange(len(rows)), rows[:, cols]) for cols in columns]  # every row may read every block
    assert sum(_blockwise_rank(local, alone, np.ones(len(rows), dtype=bool))) == rank_and_gap(rows)[0]
    within, across = _blockwise_rank(local, alone, keep)
    assert within + across == (rank_and_gap(rows[keep])[0] if keep.any() else 0)
    inside = keep & (alone >= 0)
    assert within == (rank_and_gap(rows[inside])[0] if inside.any() else 0)  # the rows within blocks alone
    read = [(np.flatnonzero(np.any(rows[:, cols] != 0, axis=1)), cols) for cols in columns]  # only the rows reading it
    assert _blockwise_rank([(idx, rows[idx][:, cols]) for idx, cols in read], alone, keep) == (within, across)


@settings(max_examples=40, deadline=None)
@given(D=st.integers(2, 30), data=st.data())
def test_fields_that_span_what_the_laws_leave_get_the_svds_rank_without_one_and_others_get_none(D, data):
    """Fields spanning the complement of orthonormal law rows: the Cholesky test gives the
    SVD's rank, D - laws. Fields that miss one direction of it, or lean along a law, get None
    (the SVD decides), never a rank they do not have."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    m = data.draw(st.integers(0, D - 1))
    Q = np.linalg.qr(rng.normal(size=(D, D)))[0]
    laws, rest = Q[:, :m].T, Q[:, m:].T
    fields = rng.normal(size=(D + 8, D - m)) @ rest
    found = _spanning_rest(fields, laws)
    assert found is not None and found[0] == D - m == rank_and_gap(fields)[0] and found[1] >= 1e6
    if D - m >= 2:  # one direction of several at 1e-6 of the rest: past the Gram matrix, the QR path
        weak = fields + (1e-6 - 1) * np.outer(fields @ rest[0], rest[0])
        found = _spanning_rest(weak, laws)
        assert found is not None and found[0] == D - m == rank_and_gap(weak)[0]
    missing = rng.normal(size=(D + 8, D - m - 1)) @ rest[1:]
    assert _spanning_rest(missing, laws) is None
    if m:
        assert _spanning_rest(fields + 1e-3 * rng.normal(size=(D + 8, m)) @ laws, laws) is None


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_the_derived_laws_chosen_components_are_those_of_every_law_and_read_only_their_candidate_blocks(data):
    """`_law_components`' laws_at(params, only) evaluates only the laws of ``only`` and
    gives exactly laws_at(params)[only]; each component's gradient is 0 off the parameters
    its candidate set names (so a block's rows may be taken from its candidates alone)."""
    torch.manual_seed(0)
    module = BasicBlock(2, 3, 2)
    x = torch.randn(4, 2, 4, 4)
    converted = Converted.of(module, x)
    laws_at, names, reads = _law_components(module, converted, converted.laws())
    point = {name: torch.randn(p.shape, dtype=torch.float64) for name, p in module.named_parameters()}
    only = sorted(data.draw(st.sets(st.integers(0, len(names) - 1), min_size=1)))
    assert torch.equal(laws_at(point, only), laws_at(point)[torch.as_tensor(only)])
    from torch.func import jacrev

    J = jacrev(laws_at)(point)
    for name, rows in J.items():
        touching = np.any(np.asarray(rows).reshape(len(names), -1) != 0, axis=1)
        assert all(name in reads[i] for i in np.flatnonzero(touching))
    assert all(read < set(point) for read in reads)  # candidates, never every parameter
