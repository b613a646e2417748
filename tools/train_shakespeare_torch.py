#!/usr/bin/python3
"""The PyTorch side of the tinyshakespeare comparison (docs/training.md).

Trains the same model with the same hyperparameters as

    tfm_pretrain --text tinyshakespeare.txt --layers 4 --heads 4 --d-model 128 --ctx 64 \
                 --batch 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99 --threads 2

does: GPT-2 architecture (pre-LayerNorm with biases, learned positions, tanh-GELU MLP of 4·d,
tied embedding and head), byte-level tokens (vocabulary 256), first 90% of the bytes for
training and the last 10% for validation, random windows, AdamW (beta1 0.9, beta2 0.99,
eps 1e-8, weight decay 0.1 on every tensor of two or more dimensions), global-norm clipping at
1.0, nanoGPT's warm-up (lr·(it+1)/(warmup+1)) then cosine decay to min_lr at the last step, no
dropout, GPT-2 initialisation (normal 0.02, residual projections 0.02/sqrt(2·layers)).
Validation: the mean loss over the same 20 batches of 12 evenly spaced windows that tfm's
evaluate() uses, every 250 steps and at the end.

Prints the final validation loss and the wall-clock time of the training loop (evaluations
included), and appends both as one JSON line to --json when given. Debian's python3-torch is
enough:  /usr/bin/python3 tools/train_shakespeare_torch.py --data .../tinyshakespeare.txt
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, layers):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)
        for lin in (self.c_attn, self.c_fc):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        for lin in (self.c_proj, self.mlp_proj):
            nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * layers))
            nn.init.zeros_(lin.bias)

    def forward(self, x, mask):
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        q = q.view(B, T, self.heads, hd).transpose(1, 2)
        k = k.view(B, T, self.heads, hd).transpose(1, 2)
        v = v.view(B, T, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:T, :T] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, D))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, ctx, d, layers, heads):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.h = nn.ModuleList(Block(d, heads, layers) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx)))

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x, self.mask)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    data = torch.tensor(list(open(a.data, "rb").read()), dtype=torch.long)
    cut = int(len(data) * 0.9)
    train, val = data[:cut], data[cut:]
    T, B = a.ctx, a.batch
    model = GPT(256, T, a.d_model, a.layers, a.heads)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": plain, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, a.beta2), eps=1e-8)

    def lr_at(it):
        if it < a.warmup:
            return a.lr * (it + 1) / (a.warmup + 1)
        if it >= a.steps:
            return a.min_lr
        r = (it - a.warmup) / (a.steps - a.warmup)
        return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (a.lr - a.min_lr)

    def batch():
        ix = torch.randint(len(train) - T - 1, (B,))
        x = torch.stack([train[i:i + T] for i in ix])
        y = torch.stack([train[i + 1:i + 1 + T] for i in ix])
        return x, y

    @torch.no_grad()
    def evaluate():
        model.eval()
        count = a.eval_batches * B
        span = len(val) - T - 1
        total = 0.0
        for b in range(a.eval_batches):
            starts = [span * (b * B + r) // (count - 1) for r in range(B)]
            x = torch.stack([val[s:s + T] for s in starts])
            y = torch.stack([val[s + 1:s + 1 + T] for s in starts])
            total += model(x, y).item()
        model.train()
        return total / a.eval_batches

    t0 = time.time()
    for it in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batch()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        step = it + 1
        if step % 100 == 0:
            print(f"step {step}/{a.steps} loss {loss.item():.4f} lr {lr_at(it):.2e} {time.time() - t0:.1f}s", flush=True)
        if a.eval_every > 0 and step % a.eval_every == 0 and step < a.steps:
            print(f"eval step {step}: val loss {evaluate():.4f}", flush=True)
    final = evaluate()
    seconds = time.time() - t0
    print(f"validation loss {final:.4f} after {a.steps} steps; training loop {seconds:.1f} s "
          f"({a.threads} threads, torch {torch.__version__})")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"impl": "pytorch", "val_loss": final, "seconds": seconds, "steps": a.steps,
                                "threads": a.threads, "torch": torch.__version__}) + "\n")


if __name__ == "__main__":
    main()
