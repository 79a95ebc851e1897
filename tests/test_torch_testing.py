"""flowlaws.torch.testing: assert_conserved_torch on real torch modules."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from torch_models import SequenceFirst  # noqa: E402

from flowlaws.torch import assert_conserved_torch  # noqa: E402


def test_assert_conserved_torch_passes_sgd_and_names_the_law_adam_breaks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(6, 3)
    assert_conserved_torch(net, x, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    with pytest.raises(AssertionError, match=r"law unit dense0/dense1 violated at the step level"):
        assert_conserved_torch(net, x, torch.optim.Adam(net.parameters(), lr=0.05))


class SequenceFirstAttention(nn.Module):
    """nn.MultiheadAttention in torch's default layout, on a (T, N, d) input, read out at the mean position."""

    def __init__(self):
        super().__init__()
        self.attention, self.head = nn.MultiheadAttention(4, 2), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.attention(x, x, x, need_weights=False)[0].mean(0))


def test_assert_conserved_torch_reads_a_sequence_first_input_as_the_model_does():
    torch.manual_seed(0)
    net, x = SequenceFirstAttention().double(), torch.randn(5, 3, 4, dtype=torch.float64)  # (T, N, d)
    assert_conserved_torch(net, x, "gd:lr=0.05", targets=torch.randn(3, 2, dtype=torch.float64))
    with pytest.raises(AssertionError, match=r"law .* violated at the step level"):
        assert_conserved_torch(net, x, torch.optim.Adam(net.parameters(), lr=0.05))


@pytest.mark.parametrize("batch_first", [True, False])
def test_assert_conserved_torch_reads_token_ids_as_one_hot_rows(batch_first):
    """(N, T) or (T, N) token ids, and (T, N, V) targets, as the model reads them."""
    torch.manual_seed(0)
    net = SequenceFirst(batch_first=batch_first).double()
    ids = torch.randint(0, 8, (3, 5) if batch_first else (5, 3))
    assert_conserved_torch(net, ids, "gd:lr=0.05", targets=torch.randn(*ids.shape, 8, dtype=torch.float64))
