"""Scripts/bench convert: quantkit convert of a TinyLlama-1.1B-shaped bf16 checkpoint (random weights) to f16 and bf16
GGUF, beside `cp` of the same bytes and beside llama.cpp's convert_hf_to_gguf.py when it can run here."""
import json, os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(__file__))
from bench_common import median_run, table

qk = ".build/release/quantkit"
src = "bench-out/tinyllama-synth"
if not os.path.exists(src + "/model.safetensors"):
    subprocess.check_call([qk, "synth", "tinyllama-1.1b", "-o", src])
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile("Formats/golden/micro-llama-hf/" + f, f"{src}/{f}")
size = os.path.getsize(src + "/model.safetensors")
out = "bench-out/out.gguf"
cleanup = lambda: os.path.exists(out) and os.remove(out)
rows, results = [], {}
wall, rss = median_run(["cp", src + "/model.safetensors", out], before=cleanup)
results["cp"] = (wall, rss)
# quantkit writes through the page cache and fsyncs before renaming; dd with conv=fsync is the same kind of copy
results["dd bs=8M conv=fsync"] = median_run(["dd", "if=" + src + "/model.safetensors", "of=" + out, "bs=8M", "conv=fsync", "status=none"], before=cleanup)
for t in ["bf16", "f16"]:
    results[f"quantkit convert --type {t}"] = median_run([qk, "convert", src, "-o", out, "--type", t], before=cleanup)
conv = os.environ.get("LLAMA_CPP_DIR", "") + "/convert_hf_to_gguf.py"
try:
    subprocess.check_call([sys.executable, "-c", "import torch, transformers, sentencepiece"], stderr=subprocess.DEVNULL)
    have_py = os.path.exists(conv)
except Exception:
    have_py = False
if have_py:
    for t in ["bf16", "f16"]:
        results[f"convert_hf_to_gguf.py --outtype {t}"] = median_run([sys.executable, conv, src, "--outfile", out, "--outtype", t], repeats=1, before=cleanup)
cleanup()
base, dd = results["cp"][0], results["dd bs=8M conv=fsync"][0]
for k, (w, r) in results.items():
    rows.append([k, f"{w:.2f}", f"{size / w / 1e9:.2f}", f"{r / 2**20:.0f}", f"{base / w:.2f}", f"{dd / w:.2f}"])
print(f"convert bench: {src} ({size / 1e9:.2f} GB bf16, 22 layers, 2048/5632, 32/4 heads), median of 3, {os.cpu_count()} cores")
table(rows, ["command", "wall s", "GB/s", "peak RSS MiB", "speed vs cp", "speed vs dd+fsync"])
if not have_py:
    print("convert_hf_to_gguf.py: not measured (set LLAMA_CPP_DIR and install torch, transformers, sentencepiece)")
json.dump({k: {"wall_s": w, "peak_rss_bytes": r} for k, (w, r) in results.items()}, open("bench-out/convert.json", "w"), indent=2)
