"""flowlaws.torch.testing: assert_conserved_torch on real torch modules."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from flowlaws.torch import assert_conserved_torch  # noqa: E402


def test_assert_conserved_torch_passes_sgd_and_names_the_law_adam_breaks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(6, 3)
    assert_conserved_torch(net, x, torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    with pytest.raises(AssertionError, match=r"law unit dense0/dense1 violated at the step level"):
        assert_conserved_torch(net, x, torch.optim.Adam(net.parameters(), lr=0.05))
