"""The transformers Trainer callback, with a real Trainer: SGD follows the laws, AdamW departs."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
nn = torch.nn

from flowlaws.transformers import LawCallback  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]  # transformers' own notices


class Classifier(nn.Module):
    """A model as the Trainer wants one: a dict in, its loss out."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class Data(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.X, self.y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return {"x": self.X[i], "labels": self.y[i]}


def _train(tmp_path, callback, **options):
    torch.manual_seed(0)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16,
                                          num_train_epochs=2, report_to=[], save_strategy="no", logging_steps=4,
                                          use_cpu=True, disable_tqdm=True, **options)
    trainer = transformers.Trainer(model=Classifier(), args=args, train_dataset=Data(), callbacks=[callback])
    trainer.train()
    return trainer


def test_sgd_under_a_transformers_trainer_follows_every_law_with_its_schedule_and_clipping(tmp_path, capsys):
    callback = LawCallback(input_key="x", select=lambda model: model.net, loss=nn.CrossEntropyLoss())
    _train(tmp_path, callback, optim="sgd", learning_rate=0.1, weight_decay=1e-3)
    monitor = callback.monitor
    assert monitor.steps == 8 and not monitor.errors and not monitor.flagged
    assert all(len(r.measured) == 8 for r in monitor.records)
    assert "'laws/flagged': 0" in capsys.readouterr().out  # each log line says how many laws departed


def test_the_trainers_default_adamw_is_flagged_and_fail_raises(tmp_path):
    callback = LawCallback(input_key="x", select=lambda model: model.net, fail=True)
    with pytest.raises(AssertionError, match="departed at step 0"):
        _train(tmp_path, callback, learning_rate=1e-3)
    assert callback.monitor.flagged and not callback.monitor.errors
