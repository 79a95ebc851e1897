"""A transformers ``Trainer`` callback that watches the laws while it trains.

    from flowlaws.transformers import LawCallback
    trainer = Trainer(model, args, train_dataset=data, callbacks=[LawCallback(input_key="x", select=lambda m: m.net)])

When training begins it attaches a `flowlaws.torch.LawMonitor` to the model (or
``select(model)``, the part that converts: a ``Trainer`` model takes a dict and returns
its loss, which no law is about) and the trainer's optimizer (accelerate's wrapper is read
through), with ``batch[input_key]`` of the first training batch as the example input. The
``Trainer`` clips the gradient by its global norm before the step, a common factor that
keeps every law; its learning-rate schedule is read from the param groups at every step.
Each log line gets ``laws/flagged`` and ``laws/worst_effect``; at the end of training the
monitor detaches, and with ``fail=True`` a departed law raises.
``pip install 'flowlaws[transformers]'``.
"""

from __future__ import annotations

try:
    from transformers import TrainerCallback
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError("flowlaws.transformers needs transformers: pip install 'flowlaws[transformers]'") from error

from flowlaws.torch import LawMonitor


class LawCallback(TrainerCallback):
    """Watch every law of the model a ``Trainer`` trains (module docstring)."""

    def __init__(self, *, input_key: str = "input_ids", select=None, loss=None, every: int = 1, fail: bool = False):
        self.input_key, self.select, self.loss, self.every, self.fail = input_key, select, loss, every, fail
        self.monitor: LawMonitor | None = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        batch = next(iter(train_dataloader))
        module = self.select(model) if self.select is not None else model
        self.monitor = LawMonitor(module, optimizer, example_input=batch[self.input_key], loss=self.loss,
                                  every=self.every)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.monitor is not None and logs is not None:
            logs["laws/flagged"] = len(self.monitor.flagged)
            logs["laws/worst_effect"] = self.monitor.worst_effect

    def on_train_end(self, args, state, control, **kwargs):
        if self.monitor is None:
            return
        self.monitor.detach()
        if self.fail:
            self.monitor.assert_followed()
