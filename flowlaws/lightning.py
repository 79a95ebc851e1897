"""A Lightning callback that watches the laws while ``Trainer.fit`` trains.

    from flowlaws.lightning import LawCallback
    trainer = lightning.Trainer(callbacks=[LawCallback(loss=nn.CrossEntropyLoss())])

On the first training batch it attaches a `flowlaws.torch.LawMonitor` to the
LightningModule (or ``select(module)``, the part that converts) and the trainer's first
optimizer, with the batch's input (``batch[0]`` of a tuple or list, else the batch) as the
example. Lightning runs the forward and backward passes inside ``optimizer.step`` (a
closure), so the callback hands the monitor theta and the gradient in
``on_before_optimizer_step``; the optimizer's post-step hook observes the update. At each
epoch's end it logs ``laws/flagged`` (laws departed so far) and ``laws/worst_effect``; at
the end of training it detaches, and with ``fail=True`` raises if a law departed.
``pip install 'flowlaws[lightning]'``.
"""

from __future__ import annotations

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError("flowlaws.lightning needs Lightning: pip install 'flowlaws[lightning]'") from error

from flowlaws.torch import LawMonitor


class LawCallback(Callback):
    """Watch every law of the module being fit (module docstring)."""

    def __init__(self, *, loss=None, every: int = 1, select=None, fail: bool = False):
        self.loss, self.every, self.select, self.fail = loss, every, select, fail
        self.monitor: LawMonitor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.monitor is None:
            example = batch[0] if isinstance(batch, tuple | list) else batch
            module = self.select(pl_module) if self.select is not None else pl_module
            self.monitor = LawMonitor(module, trainer.optimizers[0], example_input=example, loss=self.loss,
                                      every=self.every)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.monitor is not None:
            self.monitor.before_step()

    def on_train_epoch_end(self, trainer, pl_module):
        if self.monitor is not None:
            pl_module.log("laws/flagged", float(len(self.monitor.flagged)))
            pl_module.log("laws/worst_effect", self.monitor.worst_effect)

    def on_train_end(self, trainer, pl_module):
        if self.monitor is None:
            return
        self.monitor.detach()
        if self.fail:
            self.monitor.assert_followed()
