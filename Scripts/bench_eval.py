"""Scripts/bench eval: tokens/s of `quantkit eval` on SmolLM2-135M (bf16 GGUF and HF checkpoint) at ctx 512 beside
llama-perplexity (2 threads) on the same file in the same run; the GFLOP/s the forward pass reaches beside a bare
cblas_sgemm of the same shapes; tokenizer MB/s on WikiText. Runs once with the environment as it is, and once more
with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (letting quantkit pick the kernels itself) when they are set.
Then the files llama.cpp has fast kernels for on every x86 CPU: SmolLM2 as F16 and Q4_K_M GGUFs, and a
TinyLlama-1.1B-shaped Q4_K_M (random weights; BENCH_TINY_CHUNKS, default 3), each beside llama-perplexity on the
same file, medians of BENCH_REPEATS (3) alternating runs: quantkit with exact products (the default: f32 activations)
and with `--activations llama` (activations rounded to int8 before the products of quantized rows, as llama-perplexity
rounds them: the same arithmetic as the peer), with the PPL each prints."""
import json, os, re, shutil, statistics, subprocess, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from bench_common import table

qk = ".build/release/quantkit"
llama_bin = subprocess.run(["Scripts/llama-tools"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
model = "models/smollm2-135m-instruct"
text = "../shared/data/wikitext-2-raw/wiki.test.raw"
if not os.path.exists(text):
    text = "Formats/golden/tokenize/inputs/wiki.test.first50k.txt"
chunks = int(os.environ.get("BENCH_CHUNKS", "8"))
os.makedirs("bench-out", exist_ok=True)
gguf = "bench-out/smollm2-bf16.gguf"
if not os.path.exists(gguf):
    subprocess.check_call([qk, "convert", model, "-o", gguf, "--type", "bf16"], stdout=subprocess.DEVNULL)
# forward-pass FLOPs per 512-token chunk (matmuls, full attention, half the LM head)
L, H, F, V, q, kv, T = 30, 576, 1536, 49152, 576, 192, 512
flops = L * 2 * T * (H * q + 2 * H * kv + q * H + 3 * H * F) + L * 9 * 2 * 2 * T * T * 64 + 2 * 256 * H * V

def timed(cmd, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0, r.stdout + r.stderr

rows, out = [], {}
envs = [("as set", dict(os.environ))]
if "OPENBLAS_CORETYPE" in os.environ:
    e = dict(os.environ); e.pop("OPENBLAS_CORETYPE", None); e.pop("OPENBLAS_L2_SIZE", None)
    envs.append(("unset", e))
for label, env in envs:
    sg = json.loads(subprocess.run([qk, "bench-sgemm"], capture_output=True, text=True, env=env, check=True).stdout)
    for name, m in [("bf16 GGUF", gguf), ("HF bf16", model)]:
        w, _ = timed([qk, "eval", m, "--text", text, "--chunks", str(chunks), "--json", "bench-out/eval-bench.json"], env)
        # subtract the one-off load and tokenization: time a 1-chunk run too
        w1, _ = timed([qk, "eval", m, "--text", text, "--chunks", "1", "--json", "bench-out/eval-bench.json"], env)
        per_chunk = (w - w1) / (chunks - 1)
        tps = 512 / per_chunk
        rows.append([f"quantkit eval {name} (env {label}, core {sg['core']})", f"{tps:.0f}", f"{flops / per_chunk / 1e9:.0f}", f"{sg['gflops']:.0f}"])
        out[f"quantkit {name} {label}"] = {"tokens_per_s": tps, "gflops": flops / per_chunk / 1e9, "sgemm_gflops": sg["gflops"], "core": sg["core"]}
    w, log = timed([f"{llama_bin}/llama-perplexity", "-m", gguf, "-f", text, "-c", "512", "--chunks", str(chunks), "-t", "2"], env)
    w1, _ = timed([f"{llama_bin}/llama-perplexity", "-m", gguf, "-f", text, "-c", "512", "--chunks", "1", "-t", "2"], env)
    tps = 512 * (chunks - 1) / (w - w1)
    rows.append([f"llama-perplexity bf16 GGUF, 2 threads (env {label})", f"{tps:.0f}", "", ""])
    out[f"llama-perplexity {label}"] = {"tokens_per_s": tps}
# the peers' fast paths: F16 and Q4_K_M GGUFs of SmolLM2 and a TinyLlama-shaped Q4_K_M
repeats = int(os.environ.get("BENCH_REPEATS", "3"))
files = []
for t in ["F16", "Q4_K_M"]:
    f = f"bench-out/smollm2-{t.lower()}.gguf"
    if not os.path.exists(f):
        if t == "F16":
            subprocess.check_call([qk, "convert", model, "-o", f, "--type", "f16"], stdout=subprocess.DEVNULL)
        else:
            subprocess.check_call([qk, "quantize", gguf, "-o", f, "--type", t], stdout=subprocess.DEVNULL)
    files.append((f"SmolLM2 {t}", f, chunks))
tiny, synth = "bench-out/tinyllama-1.1b-q4_k_m.gguf", "bench-out/tinyllama-1.1b-synth"   # as Scripts/bench memory makes
if not os.path.exists(tiny):
    if not os.path.exists(synth + "/config.json"):
        subprocess.check_call([qk, "synth", "tinyllama-1.1b", "-o", synth])
        for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
            shutil.copyfile("Formats/golden/micro-llama-hf/" + f, f"{synth}/{f}")
    subprocess.check_call([qk, "quantize", synth, "-o", tiny, "--type", "Q4_K_M"], stdout=subprocess.DEVNULL)
files.append(("TinyLlama-shaped Q4_K_M", tiny, int(os.environ.get("BENCH_TINY_CHUNKS", "3"))))
def ours_eval(f, n, activations):
    """per-chunk tokens/s and the PPL of `quantkit eval` on n chunks"""
    cmd = [qk, "eval", f, "--text", text, "--activations", activations, "--json", "bench-out/eval-bench.json"]
    w, _ = timed(cmd + ["--chunks", str(n)])
    ppl = json.load(open("bench-out/eval-bench.json"))["reference"]["ppl"]
    w1, _ = timed(cmd + ["--chunks", "1"])
    return 512 * (n - 1) / (w - w1), ppl

peer_rows = []
for name, f, n in files:
    exact, rounded, theirs = [], [], []
    for _ in range(repeats):
        tps, ppl_exact = ours_eval(f, n, "exact")
        exact.append(tps)
        tps, ppl_rounded = ours_eval(f, n, "llama")
        rounded.append(tps)
        w, log = timed([f"{llama_bin}/llama-perplexity", "-m", f, "-f", text, "-c", "512", "--chunks", str(n), "-t", "2"])
        ppl_llama = float(re.search(r"Final estimate: PPL = ([0-9.]+)", log).group(1))
        w1, _ = timed([f"{llama_bin}/llama-perplexity", "-m", f, "-f", text, "-c", "512", "--chunks", "1", "-t", "2"])
        theirs.append(512 * (n - 1) / (w - w1))
    e, r, l = statistics.median(exact), statistics.median(rounded), statistics.median(theirs)
    peer_rows.append([name, f"{os.path.getsize(f) / 2**20:.0f}", str(n), f"{e:.0f} ({e / l:.2f}×)", f"{r:.0f} ({r / l:.2f}×)",
                      f"{l:.0f}", f"{ppl_exact:.4f} / {ppl_rounded:.4f} / {ppl_llama:.4f}"])
    out[f"peers {name}"] = {"quantkit_tokens_per_s": exact, "quantkit_activations_llama_tokens_per_s": rounded,
                            "llama_perplexity_tokens_per_s": theirs, "chunks": n,
                            "ppl": {"quantkit": ppl_exact, "quantkit_activations_llama": ppl_rounded, "llama_perplexity": ppl_llama}}
tok = json.loads(subprocess.run([qk, "bench-tokenizer", gguf, text], capture_output=True, text=True, check=True).stdout)
print(f"eval bench: SmolLM2-135M, ctx 512, {chunks} chunks (per-chunk time after load), {os.cpu_count()} cores")
table(rows, ["run", "tokens/s", "forward GFLOP/s", "bare sgemm GFLOP/s"])
print(f"per-chunk tokens/s after load, medians of {repeats} alternating runs, 2 threads each")
table(peer_rows, ["file", "MiB", "chunks", "quantkit eval tokens/s (ratio)", "--activations llama tokens/s (ratio)",
                  "llama-perplexity tokens/s", "PPL: quantkit / --activations llama / llama-perplexity"])
print(f"tokenizer (byte-level BPE, smollm): {tok['mb_per_s']:.2f} MB/s on one core ({tok['tokens']} tokens)")
out["tokenizer_mb_per_s"] = tok["mb_per_s"]
json.dump(out, open("bench-out/eval.json", "w"), indent=2)
