"""The Lightning callback, with a real Trainer: SGD follows the laws, AdamW departs."""

import pytest

torch = pytest.importorskip("torch")
lightning = pytest.importorskip("lightning")
nn = torch.nn

from flowlaws.lightning import LawCallback  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]  # Lightning's own notices


class Classifier(lightning.LightningModule):
    """A LightningModule as people write one: a net, a training step, an optimizer."""

    def __init__(self, optimizer):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
        self.optimizer = optimizer

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return self.optimizer(self.parameters())


def _fit(optimizer, callback, epochs=2):
    torch.manual_seed(0)
    X, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=16)
    trainer = lightning.Trainer(max_epochs=epochs, callbacks=[callback], logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(Classifier(optimizer), loader)
    return trainer


def test_sgd_with_momentum_under_a_lightning_trainer_follows_every_law_at_every_step():
    callback = LawCallback(loss=nn.CrossEntropyLoss())
    _fit(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3), callback)
    monitor = callback.monitor
    assert monitor.steps == 8 and not monitor.errors and not monitor.flagged
    assert all(len(r.measured) == 8 and r.status == "holds" for r in monitor.records)


def test_adamw_under_a_lightning_trainer_is_flagged_and_fail_raises():
    callback = LawCallback(loss=nn.CrossEntropyLoss(), fail=True)
    with pytest.raises(AssertionError, match="departed at step 0"):
        _fit(lambda p: torch.optim.AdamW(p, lr=1e-3), callback)
    assert callback.monitor.flagged and not callback.monitor.errors


def test_the_callback_watches_every_kth_step_and_a_selected_part():
    callback = LawCallback(every=4, select=lambda module: module.net)
    _fit(lambda p: torch.optim.SGD(p, lr=0.1), callback)
    assert callback.monitor.steps == 8 and all(len(r.measured) == 2 for r in callback.monitor.records)
