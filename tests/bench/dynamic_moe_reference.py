"""Times the Dynamic_MoE repository's SwitchMLP (top-p routing, Huang et al. 2024) forward +
backward at the shape of moe_bench's BM_TopPDynamicMoEShape: T 4096 tokens, d 256, 8 SwiGLU
experts of width 1024, threshold 0.4, untrained router, on the CPU.

    python dynamic_moe_reference.py --repo PATH [--threads 2] [--seconds 3]

PATH is a checkout of https://github.com/ZhenweiAn/Dynamic_MoE (its modeling/ package is
imported as is; it needs `transformers`). Prints one line: ms per pass (the median of
--repeats runs of at least --seconds each), tok/s, and experts per token.
"""
import argparse
import statistics
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, help="a Dynamic_MoE checkout")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, args.repo)
    from modeling.configuration_moe import MoEConfig
    from modeling.modeling_moe import SwitchMLP

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokens, d, h, experts = 4096, 256, 1024, 8
    config = MoEConfig(hidden_size=d, intermediate_size=h, hidden_act="silu",
                       num_experts=experts, top_p_threshold=0.4, expert_frequency=1)
    layer = SwitchMLP(config, 0)
    x = torch.randn(tokens, 1, d, requires_grad=True)  # (sequence, batch, hidden)
    grad = torch.randn(tokens, 1, d)

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).backward(grad)

    for _ in range(2):
        step()
    runs = []
    for _ in range(args.repeats):
        n, start = 0, time.perf_counter()
        while True:
            step()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= args.seconds:
                break
        runs.append(elapsed / n)
    with torch.no_grad():
        route = torch.softmax(layer.router(x), dim=2)
        cum = torch.sort(route, descending=True)[0].cumsum(-1)
        # SwitchMLP keeps the experts up to and including the first whose cumulative mass
        # exceeds the threshold.
        k = ((cum > config.top_p_threshold).long().argmax(-1) + 1).float().mean().item()
    ms = statistics.median(runs) * 1e3
    print(f"SwitchMLP {ms:.1f} ms/pass {tokens / ms * 1e3:.0f} tok/s k {k:.3f} "
          f"threads {args.threads} torch {torch.__version__}")


if __name__ == "__main__":
    main()
