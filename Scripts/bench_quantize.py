"""Scripts/bench quantize: TinyLlama-1.1B-shaped synthetic checkpoint (bf16 GGUF) -> Q8_0, Q4_0, Q4_K_M, Q6_K, IQ4_XS with
quantkit and with llama-quantize (2 threads) on the same input in the same run: wall time, peak RSS, ratios, and
whether the two files are byte-identical."""
import filecmp, json, os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(__file__))
from bench_common import median_run, table

qk = ".build/release/quantkit"
llama_bin = subprocess.run(["Scripts/llama-tools"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
src = "bench-out/tinyllama-synth"
if not os.path.exists(src + "/model.safetensors"):
    subprocess.check_call([qk, "synth", "tinyllama-1.1b", "-o", src])
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile("Formats/golden/micro-llama-hf/" + f, f"{src}/{f}")
inp = "bench-out/tinyllama-synth-bf16.gguf"
if not os.path.exists(inp):
    subprocess.check_call([qk, "convert", src, "-o", inp, "--type", "bf16"], stdout=subprocess.DEVNULL)
repeats = int(os.environ.get("BENCH_REPEATS", "3"))
types = sys.argv[1:] or ["Q8_0", "Q4_0", "Q4_K_M", "Q6_K", "IQ4_XS"]
rows, out = [], {}
env = dict(os.environ, QUANTKIT_THREADS="2")
for t in types:
    a, b = f"bench-out/qk-{t}.gguf", f"bench-out/lq-{t}.gguf"
    w1, r1 = median_run([qk, "quantize", inp, "-o", a, "--type", t], repeats, env=env)
    w2, r2 = median_run([f"{llama_bin}/llama-quantize", inp, b, t, "2"], repeats)
    same = filecmp.cmp(a, b, shallow=False)
    rows.append([t, f"{w1:.1f}", f"{w2:.1f}", f"{w1 / w2:.2f}", f"{r1 / 2**20:.0f}", f"{r2 / 2**20:.0f}", f"{r1 / r2:.2f}", "yes" if same else "NO"])
    out[t] = {"quantkit_s": w1, "llama_quantize_s": w2, "quantkit_rss": r1, "llama_quantize_rss": r2, "identical": same}
    os.remove(a); os.remove(b)
print(f"quantize bench: {inp} (TinyLlama-1.1B shapes, bf16), median of {repeats}, 2 threads each")
table(rows, ["preset", "quantkit s", "llama-quantize s", "time ratio", "quantkit MiB", "llama-q MiB", "RSS ratio", "identical"])
json.dump(out, open("bench-out/quantize.json", "w"), indent=2)
