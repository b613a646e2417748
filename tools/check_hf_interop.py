#!/usr/bin/python3
"""Loads what tfm's save_pretrained wrote with Hugging Face transformers and compares logits.

    TFM_HF_EXPORT_DIR=/tmp/tfm-hf build/tests/test_checkpoint --run_test=export_for_transformers
    /usr/bin/python3 tools/check_hf_interop.py /tmp/tfm-hf

For each model directory (gpt2/, llama/): AutoModelForCausalLM.from_pretrained(dir) must load
with no missing or unexpected weights, and its logits for the tokens in reference.safetensors
must equal tfm's to fp32 rounding. For each LoRA directory (gpt2_lora/, llama_lora/): the base
model from base/ with PEFT's PeftModel.from_pretrained(base, adapter/) must give tfm's logits of
base + adapters. Needs transformers and peft (pip install transformers==4.40.2 peft==0.10.0
--no-deps work with Debian's python3-torch 1.13); CI does not run it.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tfm-hf")
    worst = 0.0
    for d in sorted(p for p in root.iterdir() if (p / "reference.safetensors").exists()):
        lora = (d / "adapter").exists()
        model, info = AutoModelForCausalLM.from_pretrained(d / "base" if lora else d, torch_dtype=torch.float32,
                                                           output_loading_info=True)
        # GPT-2's causal-mask buffers are not weights; anything else missing is an error
        missing = [k for k in info.get("missing_keys", []) if not k.endswith((".attn.bias", ".attn.masked_bias"))]
        if missing or info.get("unexpected_keys") or info.get("mismatched_keys"):
            print(f"{d.name}: loading problems: {info}")
            sys.exit(1)
        ref = load_file(str(d / "reference.safetensors"))
        if lora:
            from peft import PeftModel
            with torch.no_grad():  # the adapters must matter, or the comparison proves nothing
                effect = (model.eval()(ref["tokens"].long()).logits - ref["logits"]).abs().max().item()
            print(f"{d.name}: base alone differs from tfm's adapted logits by {effect:.3g}")
            if effect < 1e-2:
                print(f"{d.name}: the adapters barely change the logits")
                sys.exit(1)
            model = PeftModel.from_pretrained(model, d / "adapter")
        model.eval()
        with torch.no_grad():
            logits = model(ref["tokens"].long()).logits
        err = (logits - ref["logits"]).abs().max().item()
        scale = ref["logits"].abs().max().item()
        name = type(model.base_model.model).__name__ + " + PEFT LoRA" if lora else type(model).__name__
        print(f"{d.name}: {name}, max |logits - tfm| = {err:.3g} (max |logit| {scale:.3g})")
        worst = max(worst, err / max(scale, 1e-30))
    ok = worst < 1e-5
    print("OK" if ok else "MISMATCH", f"(worst relative error {worst:.3g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
