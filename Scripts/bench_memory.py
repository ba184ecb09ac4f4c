"""Scripts/bench memory [tinyllama-1.1b|llama2-7b] [--gptq]: peak RSS of the jobs that run the model on a synthetic
checkpoint of that shape quantized to Q4_K_M — eval (the file as its own reference: perplexity only), imatrix — beside
llama-perplexity and llama-imatrix on the same file, same text, same chunks; one run each (the inputs are large).
With --gptq also GPTQ of the bf16 checkpoint into a packed w4 g128 checkpoint with 8 × 512 calibration tokens.
The targets (the one-home-for-the-model issue): eval ≤ file + 1 GiB (TinyLlama) / + 2 GiB (7B), imatrix ≤ file + 2 GiB,
GPTQ ≤ 8 GiB."""
import json, os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(__file__))
from bench_common import run, table

args = [a for a in sys.argv[1:] if not a.startswith("--")]
shape = args[0] if args else "tinyllama-1.1b"
gptq = "--gptq" in sys.argv
chunks = os.environ.get("BENCH_CHUNKS", "2")
qk = os.environ.get("QUANTKIT_BIN", ".build/release/quantkit")
src = f"bench-out/{shape}-synth"
if not os.path.exists(src + "/config.json"):
    subprocess.check_call([qk, "synth", shape, "-o", src, "--shards", "2" if shape == "llama2-7b" else "1"])
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile("Formats/golden/micro-llama-hf/" + f, f"{src}/{f}")
q = f"bench-out/{shape}-q4_k_m.gguf"
if not os.path.exists(q):
    subprocess.check_call([qk, "quantize", src, "-o", q, "--type", "Q4_K_M"], stdout=subprocess.DEVNULL)
size = os.path.getsize(q)
text = "../shared/data/wikitext-2-raw/wiki.test.raw"
cal = "../shared/data/wikitext-2-raw/wiki.valid.raw"
env = dict(os.environ, QUANTKIT_THREADS="2")
rows, out = [], {"file_bytes": size, "chunks": int(chunks)}

def row(name, cmd, key, e=None):
    w, r = run(cmd, e)
    out[key] = {"s": w, "rss": r}
    rows.append([name, f"{w:.1f}", f"{r / 2**20:.0f}", f"{(r - size) / 2**20:+.0f}"])

row("quantkit eval", [qk, "eval", q, "--text", text, "--chunks", chunks], "eval", env)
row("quantkit imatrix", [qk, "imatrix", q, "--calibration", cal, "--chunks", chunks, "-o", "bench-out/mem.imatrix.gguf"], "imatrix", env)
if gptq:
    shutil.rmtree(f"bench-out/{shape}-gptq-w4g128", ignore_errors=True)
    row("quantkit quantize --method gptq (bf16 → w4 g128, 8 × 512)",
        [qk, "quantize", src, "-o", f"bench-out/{shape}-gptq-w4g128", "--format", "gptq", "--method", "gptq", "--group-size", "128",
         "--calibration", cal, "--samples", "8", "--seq-len", "512"], "gptq", env)
try:
    llama_bin = subprocess.run(["Scripts/llama-tools"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    row("llama-perplexity", [f"{llama_bin}/llama-perplexity", "-m", q, "-f", text, "--chunks", chunks, "-c", "512", "-t", "2", "-b", "512"], "llama_perplexity")
    row("llama-imatrix", [f"{llama_bin}/llama-imatrix", "-m", q, "-f", cal, "--chunks", chunks, "-c", "512", "-t", "2",
                          "-o", "bench-out/mem-llama.imatrix.gguf"], "llama_imatrix")
except subprocess.CalledProcessError:
    print("llama.cpp tools not available: quantkit only")
print(f"memory bench: {q} ({size / 2**20:.0f} MiB, {shape} shapes, random weights), {chunks} chunks of 512, 2 threads, one run each")
table(rows, ["job", "wall s", "peak RSS MiB", "RSS − file MiB"])
json.dump(out, open(f"bench-out/memory-{shape}.json", "w"), indent=2)
