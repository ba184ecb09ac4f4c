"""Interop with stock llama.cpp (tools built by Scripts/llama-tools):
1. llama-tokenize with quantkit's SmolLM2 bf16 GGUF gives the golden ids (made with the original SmolLM2 GGUF).
2. llama-quantize on quantkit's bf16 GGUF gives byte-identical files to quantkit's one-step quantize of the HF checkpoint.
3. llama-perplexity loads and runs quantkit's Q8_0, Q4_0, Q4_K_M and IQ4_NL files; the numbers are printed."""
import json, os, re, subprocess, sys

bin_dir, work, model = sys.argv[1], sys.argv[2], sys.argv[3]
chunks = int(os.environ.get("QUANTKIT_INTEROP_CHUNKS", "8"))
qk = ".build/release/quantkit"
gold = "Formats/golden/tokenize"
run = lambda *a, **k: subprocess.run(list(a), check=True, capture_output=True, text=True, **k)

bf16 = f"{work}/smol-bf16.gguf"
run(qk, "convert", model, "-o", bf16, "--type", "bf16")

# 1. tokenizer
n = 0
for f in sorted(os.listdir(f"{gold}/smollm2")):
    if not f.endswith(".json") or f.startswith("_"):
        continue
    g = json.load(open(f"{gold}/smollm2/{f}"))
    inp = f"{gold}/inputs/{f[:-5]}.txt"
    for key, extra in [("llama_tokenize_default", []), ("llama_tokenize_no_bos", ["--no-bos"]),
                       ("llama_tokenize_no_bos_no_parse_special", ["--no-bos", "--no-parse-special"])]:
        out = run(f"{bin_dir}/llama-tokenize", "-m", bf16, "-f", inp, "--ids", "--no-escape", "--log-disable", *extra).stdout
        ids = json.loads(out.strip().splitlines()[-1]) if out.strip() else []
        if ids != g[key]:
            raise SystemExit(f"interop FAIL: llama-tokenize {f} {key}: {ids[:12]} != {g[key][:12]}")
        n += 1
print(f"interop ok: llama-tokenize on quantkit's SmolLM2 GGUF matches the golden ids ({n} cases)")

# 2. llama-quantize vs quantkit quantize, real model
for t in ["Q8_0", "Q4_0", "Q4_K_M", "IQ4_NL"]:
    ours, theirs = f"{work}/smol-{t}.gguf", f"{work}/lq-{t}.gguf"
    run(qk, "quantize", model, "-o", ours, "--type", t)
    run(f"{bin_dir}/llama-quantize", bf16, theirs, t, "2")
    if open(ours, "rb").read() != open(theirs, "rb").read():
        raise SystemExit(f"interop FAIL: quantkit quantize {t} differs from llama-quantize on the same model")
    os.remove(theirs)
    print(f"interop ok: SmolLM2 {t}: quantkit (HF -> GGUF in one step) == llama-quantize (bf16 GGUF), byte for byte")

# 3. llama-perplexity
ppl = {}
for t in ["bf16", "Q8_0", "Q4_0", "Q4_K_M", "IQ4_NL"]:
    r = run(f"{bin_dir}/llama-perplexity", "-m", f"{work}/smol-{t}.gguf", "-f", "../shared/data/wikitext-2-raw/wiki.test.raw"
            if os.path.exists("../shared/data/wikitext-2-raw/wiki.test.raw") else "Formats/golden/tokenize/inputs/wiki.test.first50k.txt",
            "-c", "512", "--chunks", str(chunks), "-t", "2")
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", r.stdout + r.stderr)
    if not m:
        raise SystemExit(f"interop FAIL: llama-perplexity did not run {t}:\n{r.stderr[-2000:]}")
    ppl[t] = float(m.group(1))
    print(f"interop ok: llama-perplexity loads quantkit's SmolLM2 {t}: PPL = {m.group(1)} +/- {m.group(2)} ({chunks} chunks of 512)")
if not (abs(ppl["Q8_0"] / ppl["bf16"] - 1) < 0.01 and ppl["bf16"] < ppl["Q4_K_M"] < ppl["Q4_0"]):
    raise SystemExit(f"interop FAIL: perplexities out of the expected order: {ppl}")
json.dump(ppl, open(".cache/llama-perplexity.json", "w"), indent=1)

# 3b. quantkit's imatrix is accepted by llama-quantize, and both quantizers give the same bytes with it
im = f"{work}/smol.imatrix.gguf"
run(qk, "imatrix", model, "--calibration", "Formats/golden/wiki.valid.first20k.txt", "-o", im, "--ctx", "128", "--chunks", "8")
for t in ["Q4_0", "IQ4_XS"]:
    ours, theirs = f"{work}/imq-{t}.gguf", f"{work}/imlq-{t}.gguf"
    run(qk, "quantize", bf16, "-o", ours, "--type", t, "--imatrix", im)
    run(f"{bin_dir}/llama-quantize", "--imatrix", im, bf16, theirs, t, "2")
    if open(ours, "rb").read() != open(theirs, "rb").read():
        raise SystemExit(f"interop FAIL: {t} with quantkit's imatrix differs between quantkit and llama-quantize")
    os.remove(ours); os.remove(theirs)
    print(f"interop ok: llama-quantize accepts quantkit's imatrix; SmolLM2 {t} with it is byte-identical to quantkit's")

# 4. quantkit eval against llama-perplexity on F32 copies (both sides do the same math), and greedy generation.
text = "../shared/data/wikitext-2-raw/wiki.test.raw"
if not os.path.exists(text):
    text = "Formats/golden/tokenize/inputs/wiki.test.first50k.txt"
f32 = {}
for t in ["bf16", "Q8_0", "Q4_0", "Q4_K_M"]:
    f32[t] = f"{work}/f32-{t}.gguf"
    run(qk, "quantize", f"{work}/smol-{t}.gguf", "-o", f32[t], "--type", "F32", "--allow-requantize")
evj = f"{work}/eval.json"
run(qk, "eval", model, *[f"{work}/smol-{t}.gguf" for t in ["bf16", "Q8_0", "Q4_0", "Q4_K_M"]], "--text", text, "--chunks", str(chunks), "--json", evj)
ev = json.load(open(evj))
ours = {"bf16": ev["candidates"][0]["ppl"], "Q8_0": ev["candidates"][1]["ppl"], "Q4_0": ev["candidates"][2]["ppl"], "Q4_K_M": ev["candidates"][3]["ppl"]}
print(f"quantkit eval: HF reference PPL = {ev['reference']['ppl']:.4f}")
for t in ["bf16", "Q8_0", "Q4_0", "Q4_K_M"]:
    r = run(f"{bin_dir}/llama-perplexity", "-m", f32[t], "-f", text, "-c", "512", "--chunks", str(chunks), "-t", "2")
    theirs = float(re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout + r.stderr).group(1))
    rel = abs(ours[t] / theirs - 1)
    print(f"interop ok: {t}: quantkit eval PPL {ours[t]:.4f}, llama-perplexity on its F32 copy {theirs:.4f} (diff {100 * rel:.4f} %), "
          f"llama-perplexity on the {t} file itself {ppl[t]:.4f}")
    if rel > 0.001:
        raise SystemExit(f"interop FAIL: {t}: quantkit eval and llama-perplexity differ by {100 * rel:.3f} % (> 0.1 %)")
    os.remove(f32[t])

for prompt in ["Write a short poem about the sea.", "What is the capital of France?"]:
    ours = run(qk, "generate", f"{work}/smol-bf16.gguf", "--prompt", prompt, "--chat", "--max-tokens", "32").stdout.rstrip("\n")
    f32g = f"{work}/f32-gen.gguf"
    if not os.path.exists(f32g):
        run(qk, "quantize", f"{work}/smol-bf16.gguf", "-o", f32g, "--type", "F32")
    chat = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
    theirs = run(f"{bin_dir}/llama-completion", "-m", f32g, "-p", chat, "-n", "32", "--temp", "0", "-no-cnv", "--no-display-prompt",
                 "-t", "2", "--no-warmup").stdout.rstrip("\n").removesuffix(" [end of text]")
    if ours.strip() != theirs.strip():
        raise SystemExit(f"interop FAIL: greedy generation differs for {prompt!r}:\nquantkit: {ours!r}\nllama.cpp: {theirs!r}")
    print(f"interop ok: greedy chat generation of {prompt!r} equals llama.cpp's (32 tokens): {ours[:60]!r}...")

cal = "../shared/data/wikitext-2-raw/wiki.valid.raw" if os.path.exists("../shared/data/wikitext-2-raw/wiki.valid.raw") else "Formats/golden/wiki.valid.first20k.txt"

# 5. GPTQ into Q4_0: stock llama.cpp loads and runs it; against the reference it has a lower KLD than llama-quantize's
#    own Q4_0 of the same model (same types, same size).
gq = f"{work}/gptq-Q4_0.gguf"
run(qk, "quantize", model, "-o", gq, "--type", "Q4_0", "--method", "gptq", "--calibration", cal,
    "--samples", os.environ.get("QUANTKIT_INTEROP_GPTQ_SAMPLES", "32"), "--seq-len", "512", "--seed", "0")
lq = f"{work}/lq-Q4_0.gguf"
run(f"{bin_dir}/llama-quantize", bf16, lq, "Q4_0", "2")
if os.path.getsize(gq) != os.path.getsize(lq):
    raise SystemExit("interop FAIL: GPTQ Q4_0 file size differs from llama-quantize's Q4_0")
r = run(f"{bin_dir}/llama-perplexity", "-m", gq, "-f", text, "-c", "512", "--chunks", str(chunks), "-t", "2")
m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", r.stdout + r.stderr)
if not m:
    raise SystemExit("interop FAIL: llama-perplexity did not run the GPTQ Q4_0 file")
print(f"interop ok: llama-perplexity loads quantkit's GPTQ Q4_0: PPL = {m.group(1)} +/- {m.group(2)}")
evj = f"{work}/eval-gptq.json"
run(qk, "eval", model, lq, gq, "--text", text, "--chunks", str(chunks), "--json", evj)
ev = json.load(open(evj))
k_lq, k_gq = ev["candidates"][0]["kld_mean"], ev["candidates"][1]["kld_mean"]
print(f"interop: KLD vs bf16: llama-quantize Q4_0 {k_lq:.6f} (PPL {ev['candidates'][0]['ppl']:.4f}, top-1 {ev['candidates'][0]['same_top1_percent']:.2f} %), "
      f"GPTQ Q4_0 {k_gq:.6f} (PPL {ev['candidates'][1]['ppl']:.4f}, top-1 {ev['candidates'][1]['same_top1_percent']:.2f} %), same size {os.path.getsize(gq)} bytes")
if not k_gq < k_lq:
    raise SystemExit("interop FAIL: GPTQ Q4_0 does not have a lower KLD than llama-quantize's Q4_0")

# 5b. the same with an importance matrix from llama-imatrix: llama-quantize Q4_0 --imatrix against GPTQ Q4_0 given the
#     same imatrix (it weights GPTQ's block scale search, and the plan's Q4_1 ffn_down tensors): same size, lower KLD.
im = f"{work}/llama.imatrix.gguf"
run(f"{bin_dir}/llama-imatrix", "-m", bf16, "-f", cal, "-c", "512", "--chunks", "32", "-o", im, "-t", "2")
lqi, gqi = f"{work}/lq-Q4_0-im.gguf", f"{work}/gptq-Q4_0-im.gguf"
run(f"{bin_dir}/llama-quantize", "--imatrix", im, bf16, lqi, "Q4_0", "2")
run(qk, "quantize", model, "-o", gqi, "--type", "Q4_0", "--method", "gptq", "--imatrix", im, "--calibration", cal,
    "--samples", os.environ.get("QUANTKIT_INTEROP_GPTQ_SAMPLES", "32"), "--seq-len", "512", "--seed", "0")
if os.path.getsize(gqi) != os.path.getsize(lqi):
    raise SystemExit("interop FAIL: GPTQ Q4_0 with the imatrix differs in size from llama-quantize's Q4_0 with it")
evj = f"{work}/eval-gptq-im.json"
run(qk, "eval", model, lqi, gqi, "--text", text, "--chunks", str(chunks), "--json", evj)
ev = json.load(open(evj))
a, b = ev["candidates"]
print(f"interop: with llama-imatrix's imatrix: llama-quantize Q4_0 KLD {a['kld_mean']:.6f} (PPL {a['ppl']:.4f}, top-1 {a['same_top1_percent']:.2f} %), "
      f"GPTQ Q4_0 KLD {b['kld_mean']:.6f} (PPL {b['ppl']:.4f}, top-1 {b['same_top1_percent']:.2f} %), same size {os.path.getsize(gqi)} bytes; "
      f"GPTQ without an imatrix (smaller plan, {os.path.getsize(gq)} bytes): KLD {k_gq:.6f}")
if not b["kld_mean"] < a["kld_mean"]:
    raise SystemExit("interop FAIL: GPTQ Q4_0 with the imatrix does not have a lower KLD than llama-quantize's Q4_0 with it")
if not k_gq < a["kld_mean"]:
    raise SystemExit("interop FAIL: GPTQ Q4_0 without an imatrix does not beat llama-quantize's Q4_0 with one")

# 5c. GPTQ into Q4_K_M (K-quants with their Q5_0/Q8_0 fallbacks on SmolLM2's 576 columns), given llama-imatrix's
#     imatrix, against llama-quantize's Q4_K_M with the same imatrix: stock llama.cpp loads it, same size, lower KLD.
lqk, gqk = f"{work}/lq-Q4_K_M-im.gguf", f"{work}/gptq-Q4_K_M-im.gguf"
run(f"{bin_dir}/llama-quantize", "--imatrix", im, bf16, lqk, "Q4_K_M", "2")
run(qk, "quantize", model, "-o", gqk, "--type", "Q4_K_M", "--method", "gptq", "--imatrix", im, "--calibration", cal,
    "--samples", os.environ.get("QUANTKIT_INTEROP_GPTQ_SAMPLES", "32"), "--seq-len", "512", "--seed", "0")
if os.path.getsize(gqk) != os.path.getsize(lqk):
    raise SystemExit("interop FAIL: GPTQ Q4_K_M differs in size from llama-quantize's Q4_K_M")
r = run(f"{bin_dir}/llama-perplexity", "-m", gqk, "-f", text, "-c", "512", "--chunks", str(chunks), "-t", "2")
m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", r.stdout + r.stderr)
if not m:
    raise SystemExit("interop FAIL: llama-perplexity did not run the GPTQ Q4_K_M file")
evj = f"{work}/eval-gptq-k.json"
run(qk, "eval", model, lqk, gqk, "--text", text, "--chunks", str(chunks), "--json", evj)
a, b = json.load(open(evj))["candidates"]
print(f"interop ok: llama-perplexity loads quantkit's GPTQ Q4_K_M (PPL {m.group(1)}); with llama-imatrix's imatrix: llama-quantize "
      f"Q4_K_M KLD {a['kld_mean']:.6f} (PPL {a['ppl']:.4f}, top-1 {a['same_top1_percent']:.2f} %), GPTQ Q4_K_M KLD {b['kld_mean']:.6f} "
      f"(PPL {b['ppl']:.4f}, top-1 {b['same_top1_percent']:.2f} %), same size {os.path.getsize(gqk)} bytes")
if not b["kld_mean"] < a["kld_mean"]:
    raise SystemExit("interop FAIL: GPTQ Q4_K_M with the imatrix does not have a lower KLD than llama-quantize's Q4_K_M with it")

# 6. llama.cpp's own converter (convert_hf_to_gguf.py, which dequantizes GPTQ and compressed-tensors checkpoints) reads
#    quantkit's packed outputs; llama-perplexity on its F32 result agrees with quantkit eval on the packed directory.
src = os.path.normpath(os.path.join(bin_dir, "..", "..", "src"))
conv = os.path.join(src, "convert_hf_to_gguf.py")
packed = {
    "gptq-rtn-w4g64-asym": ["--format", "gptq", "--method", "rtn", "--group-size", "64", "--asym"],
    "gptq-actorder-w4g64-sym": ["--format", "gptq", "--method", "gptq", "--act-order", "--group-size", "64", "--sym",
                                "--calibration", cal, "--samples", "8", "--seq-len", "512"],
    "ct-rtn-w4g32-sym": ["--format", "compressed-tensors", "--method", "rtn", "--group-size", "32", "--sym"],
    "ct-rtn-w4g64-asym": ["--format", "compressed-tensors", "--method", "rtn", "--group-size", "64", "--asym"],
}
dirs = []
for name, args in packed.items():
    d = f"{work}/{name}"
    run(qk, "quantize", model, "-o", d, *args)
    dirs.append(d)
evj = f"{work}/eval-packed.json"
run(qk, "eval", model, *dirs, "--text", text, "--chunks", str(chunks), "--json", evj)
ev = json.load(open(evj))
for d, c in zip(dirs, ev["candidates"]):
    g = d + ".f32.gguf"
    r = subprocess.run([sys.executable, conv, d, "--outfile", g, "--outtype", "f32"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"interop FAIL: convert_hf_to_gguf.py could not read {os.path.basename(d)}:\n{r.stderr[-2000:]}")
    r = run(f"{bin_dir}/llama-perplexity", "-m", g, "-f", text, "-c", "512", "--chunks", str(chunks), "-t", "2")
    theirs = float(re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout + r.stderr).group(1))
    rel = abs(c["ppl"] / theirs - 1)
    print(f"interop ok: {os.path.basename(d)}: convert_hf_to_gguf.py reads it; llama-perplexity {theirs:.4f}, quantkit eval on the "
          f"packed directory {c['ppl']:.4f} (diff {100 * rel:.4f} %), KLD {c['kld_mean']:.5f}")
    if rel > 0.002:
        raise SystemExit(f"interop FAIL: {os.path.basename(d)}: quantkit eval and llama-perplexity differ by {100 * rel:.3f} % (> 0.2 %)")
    os.remove(g)

# 7. KL-divergence base files are interchangeable: quantkit's (--kld-base-out) and llama-perplexity's (--save-all-logits)
#    hold the same tokens; llama-perplexity --kl-divergence-base gives the same KLD from either; quantkit eval --kld-base
#    on llama's file gives the KLD quantkit computes with the reference model.
cand = f"{work}/smol-Q4_K_M.gguf"
kq, kl = f"{work}/quantkit.kld", f"{work}/llama.kld"
j1, j2 = f"{work}/eval-kld-direct.json", f"{work}/eval-kld-base.json"
run(qk, "eval", bf16, cand, "--text", text, "--chunks", str(chunks), "--kld-base-out", kq, "--json", j1)
run(f"{bin_dir}/llama-perplexity", "-m", bf16, "-f", text, "-c", "512", "--chunks", str(chunks), "--save-all-logits", kl, "-t", "2")
head = 20 + chunks * 512 * 4
a, b = open(kq, "rb").read(), open(kl, "rb").read()
if len(a) != len(b) or a[:head] != b[:head]:
    raise SystemExit("interop FAIL: quantkit's KLD base differs from llama-perplexity's in size, header or tokens")
def llama_kld(base):
    r = run(f"{bin_dir}/llama-perplexity", "-m", cand, "--kl-divergence-base", base, "--kl-divergence", "-t", "2")
    return float(re.search(r"Mean\s+KLD:\s+([0-9.]+)", r.stdout + r.stderr).group(1))
lk_q, lk_l = llama_kld(kq), llama_kld(kl)
run(qk, "eval", "--kld-base", kl, cand, "--json", j2)
direct, via = json.load(open(j1))["candidates"][0]["kld_mean"], json.load(open(j2))["candidates"][0]["kld_mean"]
print(f"interop ok: KLD base files: llama-perplexity on Q4_K_M with quantkit's base {lk_q:.6f}, with its own {lk_l:.6f}; "
      f"quantkit eval with llama's base {via:.6f}, with the reference model {direct:.6f}")
if abs(lk_q / lk_l - 1) > 0.01 or abs(via / direct - 1) > 0.01:
    raise SystemExit("interop FAIL: KLD from the two base files differs by more than 1 %")
