#!/usr/bin/env python3
"""The compute-only reference for bench/neumf_speed.sh: the same NeuMF (GMF embedding D, MLP tower
LAYERS, output layer on [D + LAYERS[-1]]) written in plain PyTorch, trained with Adam on BCE-with-
logits over pre-generated random (user, item, label) batches: no data pipeline, no sampling, no
validation. Its samples/s is what the model's arithmetic costs in this LibTorch on this machine.
usage: neumf_torch_ref.py USERS ITEMS D LAYERS(comma) BATCH STEPS THREADS [dense|sparse|sgd]
(prints samples/s). sparse: embeddings with sparse gradients, SparseAdam for them and Adam for
the layers (PyTorch's counterpart of rzoo's lazy_adam). sgd: plain SGD, sparse embedding
gradients (as rzoo's sgd without momentum or weight decay)."""
import sys, time
import torch

U, I, D = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
layers = [int(x) for x in sys.argv[4].split(",")]
B, steps, threads = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
mode = sys.argv[8] if len(sys.argv) > 8 else "dense"
sparse = mode in ("sparse", "sgd")
torch.set_num_threads(threads)
torch.manual_seed(1)


class NeuMF(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gu, self.gi = torch.nn.Embedding(U, D, sparse=sparse), torch.nn.Embedding(I, D, sparse=sparse)
        self.mu = torch.nn.Embedding(U, layers[0] // 2, sparse=sparse)
        self.mi = torch.nn.Embedding(I, layers[0] // 2, sparse=sparse)
        self.mlp = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:]))
        self.out = torch.nn.Linear(D + layers[-1], 1)

    def forward(self, u, i):
        g = self.gu(u) * self.gi(i)
        h = torch.cat([self.mu(u), self.mi(i)], 1)
        for l in self.mlp:
            h = torch.relu(l(h))
        return self.out(torch.cat([g, h], 1)).squeeze(1)


m = NeuMF()
emb = [p for n, p in m.named_parameters() if n.startswith(("gu", "gi", "mu", "mi"))]
rest = [p for n, p in m.named_parameters() if not n.startswith(("gu", "gi", "mu", "mi"))]
if mode == "sgd":
    opts = [torch.optim.SGD(m.parameters(), lr=1e-3)]
elif sparse:
    opts = [torch.optim.SparseAdam(emb, lr=1e-3), torch.optim.Adam(rest, lr=1e-3)]
else:
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3)]
batches = [(torch.randint(U, (B,)), torch.randint(I, (B,)), (torch.rand(B) < 0.2).float()) for _ in range(50)]


def step(b):
    for o in opts:
        o.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(m(b[0], b[1]), b[2])
    loss.backward()
    for o in opts:
        o.step()


for b in batches[:5]:
    step(b)
t0 = time.perf_counter()
for s in range(steps):
    step(batches[s % len(batches)])
dt = time.perf_counter() - t0
print(f"{steps * B / dt:.0f}")
