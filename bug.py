import sys, torch
from torch import nn
from flowlaws.torch import LawMonitor
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
x = torch.randn(8, 2, 6, 6)
y = torch.randint(0, 3, (8,))
for fmt in (torch.contiguous_format, torch.channels_last):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 1, stride=2, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(36, 3)).to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    m = LawMonitor(net, opt, example_input=x.to(memory_format=fmt), loss=nn.CrossEntropyLoss())
    for _ in range(20):
        opt.zero_grad(); nn.functional.cross_entropy(net(x.to(memory_format=fmt)), y).backward(); opt.step()
    print(fmt, len(m.flagged), "of", len(m.records), "worst", m.worst_effect, [r.law.name for r in m.flagged][:3])
