#!/usr/bin/env bash
# One-shot GPU check, from the repository root on a CUDA machine: the fast synthesis network against the
# per-timestep reference on the device (float64), then the training-throughput benchmark.
#   bash benchmarks/gpu_synthesis_check.sh            (DEV=cpu PY=python for a dry run without a GPU)
set -u
PY=${PY:-python3}
DEV=${DEV:-cuda}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY - "$DEV" <<'PY'
import sys, torch
from seqbench.models import build_model
from seqbench.models.reference import synthesis_forward_reference
dev = sys.argv[1]
print("torch", torch.__version__, "device", torch.cuda.get_device_name(0) if dev == "cuda" else "cpu")
for peephole in (True, False):
    torch.manual_seed(0)
    m = build_model("handwriting-synthesis", hidden_size=16, num_layers=3, n_mixtures=3, n_window=2, vocab_size=6,
                    peephole=peephole).double().to(dev)
    x = torch.randn(3, 20, 3, dtype=torch.float64, device=dev)
    c = torch.randint(0, 6, (3, 5), device=dev); cm = torch.ones(3, 5, dtype=torch.bool, device=dev)
    y, _ = m(x, c, cm); g1 = torch.autograd.grad(y.sin().sum(), list(m.parameters()))
    r = synthesis_forward_reference(m, x, c, cm); g2 = torch.autograd.grad(r.sin().sum(), list(m.parameters()))
    print(f"peephole={peephole}: max |fast - reference| output {(y - r).abs().max().item():.2e}, "
          f"gradients {max((a - b).abs().max().item() for a, b in zip(g1, g2)):.2e}")
PY
for B in ${BATCHES:-32 64}; do
  timeout 150 $PY benchmarks/bench_synthesis_train.py --device "$DEV" --batch "$B" --steps ${STEPS:-300} \
    --repeats ${REPEATS:-5} --fused --peak-tflops ${PEAK:-67} || echo "benchmark at batch $B failed or timed out"
done
