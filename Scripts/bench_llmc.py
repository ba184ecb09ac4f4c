"""llm-compressor's side of `Scripts/bench calibrate` (runs in the bench's own venv, .cache/llmc-venv):
    bench_llmc.py MODEL_DIR WINDOWS_JSON OUT_DIR gptq|gptq-act|awq GROUP_SIZE
Quantizes MODEL_DIR to int4, asymmetric, GROUP_SIZE columns per group (ignoring lm_head) on exactly the windows
quantkit uses (WINDOWS_JSON from `quantkit bench-windows`, in order, not shuffled), with 2 torch threads, and saves a
compressed-tensors checkpoint to OUT_DIR. Prints one JSON line: the oneshot call's seconds."""
import json, sys, time

model_dir, windows_path, out_dir, job, group = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot

torch.set_num_threads(2)
windows = json.load(open(windows_path))
data = Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})
weights = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": group}
groups = {"group_0": {"targets": ["Linear"], "weights": weights}}
if job.startswith("gptq"):
    from llmcompressor.modifiers.quantization import GPTQModifier
    # act-order: llm-compressor 0.14 offers only "static" (its default: groups in column order, parameters fixed
    # before the updates); the bench gives quantkit --act-order --static-groups, the same scheme and quantkit's default
    # (--act-order alone keeps the groups in act-order, g_idx, as AutoGPTQ's desc_act)
    recipe = GPTQModifier(config_groups=groups, ignore=["lm_head"], dampening_frac=0.01, block_size=128,
                          actorder="static" if job == "gptq-act" else None)
elif job == "awq":
    # llm-compressor 0.14's AWQ pins its cached activations for fast host-to-GPU copies, which fails on a machine
    # without an accelerator ("Cannot access accelerator device"); on CPU the pinning does nothing useful, so skip it
    from llmcompressor.pipelines.cache import IntermediatesCache
    if not torch.accelerator.is_available():
        IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform import AWQModifier
    recipe = [AWQModifier(duo_scaling=True, n_grid=20), QuantizationModifier(config_groups=groups, ignore=["lm_head"])]
else:
    raise SystemExit(f"unknown job {job}")

model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
tokenizer = AutoTokenizer.from_pretrained(model_dir)
t0 = time.perf_counter()
oneshot(model=model, dataset=data, recipe=recipe, num_calibration_samples=len(windows),
        max_seq_length=len(windows[0]), shuffle_calibration_samples=False)
t1 = time.perf_counter()
model.save_pretrained(out_dir, save_compressed=True)
tokenizer.save_pretrained(out_dir)
print(json.dumps({"oneshot_seconds": t1 - t0}))
