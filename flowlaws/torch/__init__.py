"""PyTorch models: their laws, their discovery, and a monitor for a real training loop.

    from flowlaws.torch import from_torch, laws_of, discover_of, LawMonitor, assert_conserved_torch

One module per step of the way, each importing only those above it:

- `conversion`: a module traced by ``torch.fx`` into a flowlaws model, checked by value
  (`from_torch`, `Converted`, `laws_of`; what converts, and the one-line error for what
  does not);
- `optimizers`: what a torch optimizer's next step will be, read from its param groups and
  its state (Delta = -c g + rest);
- `monitor`: `LawMonitor`, every law watched around ``optimizer.step()``;
- `testing`: `assert_conserved_torch`, the laws checked on a module's weights;
- `discovery`: `discover_of`, the law count from the module itself (``torch.func``).

torch is an optional extra: ``pip install 'flowlaws[torch]'`` (docs/torch.md).
"""

from flowlaws.torch.conversion import Converted, from_torch, laws_of, one_hot
from flowlaws.torch.discovery import discover_of
from flowlaws.torch.monitor import LawMonitor, Record
from flowlaws.torch.testing import assert_conserved_torch

__all__ = ["Converted", "LawMonitor", "Record", "assert_conserved_torch", "discover_of", "from_torch", "laws_of",
           "one_hot"]
