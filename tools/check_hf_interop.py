#!/usr/bin/python3
"""Loads what tfm's save_pretrained wrote with Hugging Face transformers and compares logits.

    TFM_HF_EXPORT_DIR=/tmp/tfm-hf build/tests/test_checkpoint --run_test=export_for_transformers
    /usr/bin/python3 tools/check_hf_interop.py /tmp/tfm-hf

For each model directory (gpt2/, llama/): AutoModelForCausalLM.from_pretrained(dir) must load
with no missing or unexpected weights, and its logits for the tokens in reference.safetensors
must equal tfm's to fp32 rounding. Needs transformers (pip install transformers==4.40.2 works
with Debian's python3-torch 1.13); CI does not run it.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tfm-hf")
    worst = 0.0
    for d in sorted(p for p in root.iterdir() if (p / "config.json").exists()):
        model, info = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, output_loading_info=True)
        # GPT-2's causal-mask buffers are not weights; anything else missing is an error
        missing = [k for k in info.get("missing_keys", []) if not k.endswith((".attn.bias", ".attn.masked_bias"))]
        if missing or info.get("unexpected_keys") or info.get("mismatched_keys"):
            print(f"{d.name}: loading problems: {info}")
            sys.exit(1)
        model.eval()
        ref = load_file(str(d / "reference.safetensors"))
        with torch.no_grad():
            logits = model(ref["tokens"].long()).logits
        err = (logits - ref["logits"]).abs().max().item()
        scale = ref["logits"].abs().max().item()
        print(f"{d.name}: {type(model).__name__}, max |logits - tfm| = {err:.3g} (max |logit| {scale:.3g})")
        worst = max(worst, err / max(scale, 1e-30))
    ok = worst < 1e-5
    print("OK" if ok else "MISMATCH", f"(worst relative error {worst:.3g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
