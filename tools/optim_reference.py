#!/usr/bin/python3
"""Prints the reference values tests/train/test_train.cpp checks tfm's optimizers against:
torch.optim.AdamW and torch.optim.SGD (momentum, Nesterov) run for three steps on five
parameters with fixed gradients, in float64. Debian's python3-torch is enough:

    /usr/bin/python3 tools/optim_reference.py
"""
import torch

torch.set_default_dtype(torch.float64)
p0 = [0.5, -1.25, 2.0, 0.0, -0.1]
grads = [[0.1, -0.2, 0.3, 1.0, -5.0], [0.2, 0.1, -0.4, 1.0, 5.0], [-0.3, 0.05, 0.2, -1.0, 0.5]]


def run(make):
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = make([p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().tolist()


cases = {
    "adamw": run(lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)),
    "sgd_momentum": run(lambda ps: torch.optim.SGD(ps, lr=1e-1, momentum=0.9, weight_decay=0.01)),
    "sgd_nesterov": run(lambda ps: torch.optim.SGD(ps, lr=1e-1, momentum=0.9, nesterov=True)),
}
for k, v in cases.items():
    print(f"// {k}")
    print("{" + ", ".join(f"{x:.17g}" for x in v) + "}")
