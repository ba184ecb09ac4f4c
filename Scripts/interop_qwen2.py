"""Interop on a real Qwen2 model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M from PyPI, Scripts/fetch-model) with stock llama.cpp:
1. token ids equal llama-tokenize's on WikiText-2 text and on Python code (with and without BOS/special parsing);
2. quantkit eval of the GGUF within 0.1 % of llama-perplexity on its F32 copy;
3. greedy --chat generation equal to llama-completion's (32 tokens) on two prompts, one of them code;
4. the bf16 export converted back by quantkit: llama-perplexity loads it, quantkit evaluates it exactly as the export,
   and quantkit's Q4_K_M / IQ4_XS / Q3_K_M of it are byte-identical to llama-quantize's;
5. packed GPTQ and AWQ outputs of the export read back by llama.cpp's convert_hf_to_gguf.py within 0.2 % PPL.
Its weights sit on the Q4_K/Q5_0/Q6_K/Q8_0 grids, so re-quantizing into those types is artificially easy."""
import json, os, re, subprocess, sys

bin_dir, work, gguf, hf = sys.argv[1:5]
qk = ".build/release/quantkit"
run = lambda *a, **k: subprocess.run(list(a), check=True, capture_output=True, text=True, **k)
text = "../shared/data/wikitext-2-raw/wiki.test.raw"
if not os.path.exists(text):
    text = "Formats/golden/wiki.valid.first20k.txt"

# 1. tokenizer
excerpt = f"{work}/qwen-wiki.txt"
with open(text, encoding="utf-8") as f:
    open(excerpt, "w", encoding="utf-8").write(f.read(100_000))
n = 0
for inp in [excerpt, "Calibration/python-stdlib-excerpt.txt"]:
    for flags in [[], ["--no-bos", "--no-parse-special"]]:
        theirs = json.loads(run(f"{bin_dir}/llama-tokenize", "-m", gguf, "-f", inp, "--ids", "--no-escape", "--log-disable", *flags).stdout.strip().splitlines()[-1])
        ours = json.loads(run(qk, "tokenize", gguf, "--file", inp, "--ids", *flags).stdout)
        if ours != theirs:
            i = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            raise SystemExit(f"interop FAIL: Qwen2 tokenization of {inp} {flags} differs at {i}: {ours[i:i + 5]} != {theirs[i:i + 5]}")
        n += len(ours)
print(f"interop ok: Qwen2.5-Coder tokenizer: quantkit tokenize == llama-tokenize on WikiText-2 and Python code ({n} ids, 4 cases)")

# 2. eval against llama-perplexity on an F32 copy
f32 = f"{work}/qwen-f32.gguf"
run(f"{bin_dir}/llama-quantize", "--allow-requantize", gguf, f32, "F32", "2")
chunks = os.environ.get("QUANTKIT_INTEROP_QWEN_CHUNKS", "4")
out = run(f"{bin_dir}/llama-perplexity", "-m", f32, "-f", text, "--chunks", chunks, "-c", "512", "-b", "512", "-t", "2").stderr
theirs = float(re.search(r"Final estimate: PPL = ([0-9.]+)", out).group(1))
j = f"{work}/qwen-eval.json"
run(qk, "eval", gguf, "--text", text, "--chunks", chunks, "--json", j)
ours = json.load(open(j))["reference"]["ppl"]
rel = abs(ours / theirs - 1)
if rel > 0.001:
    raise SystemExit(f"interop FAIL: Qwen2 eval PPL {ours:.4f} vs llama-perplexity {theirs:.4f} ({100 * rel:.3f} % > 0.1 %)")
print(f"interop ok: Qwen2.5-Coder Q4_K_M: quantkit eval PPL {ours:.4f}, llama-perplexity on its F32 copy {theirs:.4f} "
      f"(diff {100 * rel:.4f} %, {chunks} chunks of 512)")

# 3. greedy chat generation
system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
for prompt in ["Write a Python function that reverses a string.", "What is the capital of France?"]:
    ours = run(qk, "generate", gguf, "--prompt", prompt, "--chat", "--max-tokens", "32").stdout.rstrip("\n")
    chat = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    theirs = run(f"{bin_dir}/llama-completion", "-m", f32, "-p", chat, "-n", "32", "--temp", "0", "-no-cnv", "--no-display-prompt",
                 "-t", "2", "--no-warmup").stdout.rstrip("\n").removesuffix(" [end of text]")
    if ours.strip() != theirs.strip():
        raise SystemExit(f"interop FAIL: Qwen2 greedy generation differs for {prompt!r}:\nquantkit: {ours!r}\nllama.cpp: {theirs!r}")
    print(f"interop ok: Qwen2.5-Coder greedy chat generation of {prompt!r} equals llama.cpp's (32 tokens): {ours[:50]!r}...")
os.remove(f32)

# 4. the bf16 export converted back: llama.cpp loads it; quantize presets byte-identical to llama-quantize's
bf16 = f"{work}/qwen-bf16.gguf"
run(qk, "convert", hf, "-o", bf16, "--type", "bf16")
out = run(f"{bin_dir}/llama-perplexity", "-m", bf16, "-f", text, "--chunks", "2", "-c", "512", "-b", "512", "-t", "2").stderr
lp = float(re.search(r"Final estimate: PPL = ([0-9.]+)", out).group(1))
run(qk, "eval", hf, bf16, "--text", text, "--chunks", "2", "--json", j)
e = json.load(open(j))
kld = e["candidates"][0]["kld_mean"]
if e["reference"]["ppl"] != e["candidates"][0]["ppl"] or kld != 0:
    raise SystemExit(f"interop FAIL: the converted Qwen2 GGUF evaluates differently from its HF checkpoint: {e['candidates'][0]}")
print(f"interop ok: Qwen2 HF -> GGUF (bf16): llama-perplexity loads it ({lp:.4f}); quantkit eval equal to the checkpoint's "
      f"({e['reference']['ppl']:.4f}, KLD 0)")
for t in ["Q4_K_M", "IQ4_XS", "Q3_K_M"]:
    ours, theirs = f"{work}/qwen-{t}.gguf", f"{work}/qwen-lq-{t}.gguf"
    run(qk, "quantize", bf16, "-o", ours, "--type", t)
    run(f"{bin_dir}/llama-quantize", bf16, theirs, t, "2")
    if open(ours, "rb").read() != open(theirs, "rb").read():
        raise SystemExit(f"interop FAIL: quantkit quantize {t} of Qwen2 differs from llama-quantize's")
    os.remove(ours)
    os.remove(theirs)
    print(f"interop ok: Qwen2.5-Coder {t}: quantkit quantize == llama-quantize, byte for byte")

# 5. packed GPTQ and AWQ outputs of the Qwen2 checkpoint (q/k/v biases kept beside the packed weights) read back by
#    llama.cpp's convert_hf_to_gguf.py: llama-perplexity on its F32 result within 0.2 % of quantkit eval on the directory.
#    Two short calibration windows: this checks the files, not the methods' accuracy (README tables do that).
conv = os.path.normpath(os.path.join(bin_dir, "..", "..", "src", "convert_hf_to_gguf.py"))
cal = "../shared/data/wikitext-2-raw/wiki.valid.raw"
if not os.path.exists(cal):
    cal = "Formats/golden/wiki.valid.first20k.txt"
calib = ["--calibration", cal, "--samples", "2", "--seq-len", "256"]
packed = {
    "qwen-gptq-w4g128": ["--format", "gptq", "--method", "gptq", "--group-size", "128", *calib],
    "qwen-awq-ct-w4g128": ["--format", "compressed-tensors", "--method", "awq", "--group-size", "128", *calib],
}
dirs = []
for name, args in packed.items():
    d = f"{work}/{name}"
    run(qk, "quantize", hf, "-o", d, *args)
    dirs.append(d)
run(qk, "eval", hf, *dirs, "--text", text, "--chunks", chunks, "--json", j)
for d, c in zip(dirs, json.load(open(j))["candidates"]):
    g = d + ".f32.gguf"
    r = subprocess.run([sys.executable, conv, d, "--outfile", g, "--outtype", "f32"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"interop FAIL: convert_hf_to_gguf.py could not read {os.path.basename(d)}:\n{r.stderr[-2000:]}")
    out = run(f"{bin_dir}/llama-perplexity", "-m", g, "-f", text, "--chunks", chunks, "-c", "512", "-b", "512", "-t", "2").stderr
    theirs = float(re.search(r"Final estimate: PPL = ([0-9.]+)", out).group(1))
    rel = abs(c["ppl"] / theirs - 1)
    if rel > 0.002:
        raise SystemExit(f"interop FAIL: {os.path.basename(d)}: quantkit eval {c['ppl']:.4f} vs llama-perplexity {theirs:.4f} "
                         f"({100 * rel:.3f} % > 0.2 %)")
    print(f"interop ok: Qwen2 {os.path.basename(d)}: convert_hf_to_gguf.py reads it (biases included); llama-perplexity "
          f"{theirs:.4f}, quantkit eval on the packed directory {c['ppl']:.4f} (diff {100 * rel:.4f} %), KLD vs bf16 {c['kld_mean']:.4f}")
    os.remove(g)
