"""Scripts/bench generate: decoding tokens/s of `quantkit generate` beside llama-completion (2 threads each, greedy,
the same chat prompt, 128 tokens) on SmolLM2-135M-Instruct as bf16, F16, Q8_0 and Q4_K_M GGUFs, medians of BENCH_REPEATS
(3) runs, alternating; then a TinyLlama-1.1B-shaped Q4_K_M (random weights) for decoding speed and peak RSS.
Decoding = the tokens after the first over the time after the first (llama.cpp's "eval time"); prompt time is
reported apart. quantkit runs twice per round: exact products (the default) and `--activations llama` (activations
rounded to int8 as llama.cpp rounds them, integer kernels). quantkit's greedy tokens must be the same in every run of a
mode."""
import json, os, re, shutil, statistics, subprocess, sys
sys.path.insert(0, os.path.dirname(__file__))
from bench_common import table

qk = os.environ.get("QUANTKIT_BIN", ".build/release/quantkit")
repeats = int(os.environ.get("BENCH_REPEATS", "3"))
tokens = os.environ.get("BENCH_TOKENS", "128")
prompt = "Write a long story about a dragon who learns to fly."
env = dict(os.environ, QUANTKIT_THREADS="2")
os.makedirs("bench-out/generate", exist_ok=True)
smol = "models/smollm2-135m-instruct"
if not os.path.exists(smol + "/config.json"):
    subprocess.check_call(["Scripts/fetch-model"])
files = {}
bf16 = "bench-out/generate/smollm2-bf16.gguf"
if not os.path.exists(bf16):
    subprocess.check_call([qk, "convert", smol, "-o", bf16, "--type", "bf16"], stdout=subprocess.DEVNULL)
files["SmolLM2 bf16"] = bf16
for t in ["F16", "Q8_0", "Q4_K_M"]:
    f = f"bench-out/generate/smollm2-{t}.gguf"
    if not os.path.exists(f):
        subprocess.check_call([qk, "quantize", bf16, "-o", f, "--type", t], stdout=subprocess.DEVNULL)
    files[f"SmolLM2 {t}"] = f
tiny, synth = "bench-out/tinyllama-1.1b-q4_k_m.gguf", "bench-out/tinyllama-1.1b-synth"   # the files Scripts/bench memory uses
if not os.path.exists(synth + "/config.json"):
    subprocess.check_call([qk, "synth", "tinyllama-1.1b", "-o", synth])
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile("Formats/golden/micro-llama-hf/" + f, f"{synth}/{f}")
if not os.path.exists(tiny):
    subprocess.check_call([qk, "quantize", synth, "-o", tiny, "--type", "Q4_K_M"], stdout=subprocess.DEVNULL)
files["TinyLlama-shaped Q4_K_M"] = tiny

try:
    llama_bin = subprocess.run(["Scripts/llama-tools"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
except subprocess.CalledProcessError:
    llama_bin = None
    print("llama.cpp tools not available: quantkit only")


def ours(path, chat, activations):
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", qk, "generate", path, "--prompt", prompt, "--max-tokens", tokens, "--json",
                          "--activations", activations] + (["--chat"] if chat else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                         errors="replace")
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"quantkit generate failed on {path}:\n{err}")
    d = json.loads(out)
    return d["decode_tokens_per_second"], d["prompt_seconds"], int(err.strip().splitlines()[-1]) * 1024, d["output_ids"]


def theirs(path, chat):
    text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n" if chat else prompt
    p = subprocess.run(["/usr/bin/time", "-f", "%M", f"{llama_bin}/llama-completion", "-m", path, "-p", text, "-n", tokens,
                        "--temp", "0", "-no-cnv", "--no-display-prompt", "-t", "2"], capture_output=True, text=True,
                       errors="replace")
    m = re.search(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs", p.stderr)
    if p.returncode != 0 or not m:
        raise SystemExit(f"llama-completion failed on {path}:\n{p.stderr[-2000:]}")
    return int(m.group(2)) / (float(m.group(1)) / 1000), int(p.stderr.strip().splitlines()[-1]) * 1024


rows, report = [], {}
modes = ["exact", "llama"]
for name, path in files.items():
    size = os.path.getsize(path)
    q = {m: [] for m in modes}
    ids = {m: set() for m in modes}
    l, q_rss, l_rss, prompt_s = [], 0, 0, []
    for _ in range(repeats):
        chat = name.startswith("SmolLM2")   # the synthetic model's random weights: a plain prompt
        for m in modes:
            tps, ps, rss, out = ours(path, chat, m)
            q[m].append(tps); ids[m].add(tuple(out)); q_rss = max(q_rss, rss)
            if m == "exact":
                prompt_s.append(ps)
        if llama_bin:
            tps, rss = theirs(path, chat)
            l.append(tps); l_rss = max(l_rss, rss)
    for m in modes:
        if len(ids[m]) != 1:
            raise SystemExit(f"{name}: quantkit's greedy tokens differ between runs ({m})")
    qm = {m: statistics.median(q[m]) for m in modes}
    lm = statistics.median(l) if l else None
    report[name] = {"file_bytes": size, "quantkit_decode_tps": q["exact"], "quantkit_llama_rounding_decode_tps": q["llama"],
                    "llama_completion_decode_tps": l, "quantkit_rss": q_rss, "llama_rss": l_rss,
                    "quantkit_prompt_s": prompt_s, "tokens": len(next(iter(ids["exact"]))),
                    "same_tokens_both_modes": ids["exact"] == ids["llama"]}
    ratio = (lambda v: f"{v / lm:.2f}×") if lm else (lambda v: "-")
    rows.append([name, f"{size / 2**20:.0f}", f"{qm['exact']:.1f}", f"{qm['llama']:.1f}", f"{lm:.1f}" if lm else "-",
                 f"{ratio(qm['exact'])} / {ratio(qm['llama'])}",
                 f"{q_rss / 2**20:.0f} ({(q_rss - size) / 2**20:+.0f})", f"{l_rss / 2**20:.0f}" if l_rss else "-"])
print(f"generate bench: {tokens} greedy tokens, chat prompt, 2 threads, medians of {repeats} runs; RSS = peak (− file)")
table(rows, ["model", "file MiB", "quantkit tok/s exact", "quantkit tok/s --activations llama", "llama-completion tok/s",
             "ratios", "quantkit RSS MiB", "llama RSS MiB"])
json.dump(report, open("bench-out/generate.json", "w"), indent=2)
