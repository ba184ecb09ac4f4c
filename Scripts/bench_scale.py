"""Scripts/bench scale: a Llama-2-7B-shaped synthetic bf16 checkpoint, sharded like the real one (2 shards, 13.5 GB):
convert to bf16 GGUF, and RTN Q4_K_M straight from the HF checkpoint, with wall time and peak RSS (target: < 2 GiB);
beside llama-quantize on the same (converted) input when its tools are built. One run each (the input is large)."""
import filecmp, json, os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(__file__))
from bench_common import median_run, table

qk = os.environ.get("QUANTKIT_BIN", ".build/release/quantkit")  # a copy lets a long run survive rebuilds
src = "bench-out/llama2-7b-synth"
if not os.path.exists(src + "/model.safetensors.index.json"):
    subprocess.check_call([qk, "synth", "llama2-7b", "-o", src, "--shards", "2"])
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile("Formats/golden/micro-llama-hf/" + f, f"{src}/{f}")
env = dict(os.environ, QUANTKIT_THREADS="2")
gguf = "bench-out/llama2-7b-bf16.gguf"
rows, out = [], {}
w, r = median_run([qk, "convert", src, "-o", gguf, "--type", "bf16"], 1, env=env)
rows.append(["quantkit convert HF -> bf16 GGUF", f"{w:.1f}", f"{r / 2**20:.0f}"]); out["convert_bf16"] = {"s": w, "rss": r}
q = "bench-out/llama2-7b-q4_k_m.gguf"
w, r = median_run([qk, "quantize", src, "-o", q, "--type", "Q4_K_M"], 1, env=env)
rows.append(["quantkit quantize HF -> Q4_K_M (one step)", f"{w:.1f}", f"{r / 2**20:.0f}"]); out["quantize_q4_k_m_hf"] = {"s": w, "rss": r}
os.remove(q)
w, r = median_run([qk, "quantize", gguf, "-o", q, "--type", "Q4_K_M"], 1, env=env)
rows.append(["quantkit quantize bf16 GGUF -> Q4_K_M", f"{w:.1f}", f"{r / 2**20:.0f}"]); out["quantize_q4_k_m_gguf"] = {"s": w, "rss": r}
try:
    llama_bin = subprocess.run(["Scripts/llama-tools"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    lq = "bench-out/llama2-7b-q4_k_m-lq.gguf"
    w, r = median_run([f"{llama_bin}/llama-quantize", gguf, lq, "Q4_K_M", "2"], 1)
    rows.append(["llama-quantize bf16 GGUF -> Q4_K_M", f"{w:.1f}", f"{r / 2**20:.0f}"]); out["llama_quantize_q4_k_m"] = {"s": w, "rss": r}
    out["identical"] = filecmp.cmp(q, lq, shallow=False)
    rows[-1].append("identical" if out["identical"] else "differs")
    os.remove(lq)
except subprocess.CalledProcessError:
    print("llama.cpp tools not available: quantkit only")
os.remove(q)
print(f"scale bench: {src} (Llama-2-7B shapes, bf16, 2 shards), one run each, 2 threads")
table([r + [""] * (4 - len(r)) for r in rows], ["job", "wall s", "peak RSS MiB", "vs quantkit's GGUF → Q4_K_M"])
json.dump(out, open("bench-out/scale.json", "w"), indent=2)
