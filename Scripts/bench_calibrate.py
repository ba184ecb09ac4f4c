"""Scripts/bench calibrate: GPTQ (plain and act-order) and AWQ, int4 asymmetric g64, on SmolLM2-135M-Instruct with
128 x 512-token windows of WikiText-2 valid, beside llm-compressor 0.14 on exactly the same windows (quantkit's, from
`quantkit bench-windows`) with 2 torch threads; quantkit with QUANTKIT_THREADS=2. Reports the medians of
BENCH_REPEATS (3) alternating runs of each job (wall seconds of the whole process, llm-compressor's oneshot call
apart, peak RSS), then the KLD / PPL / top-1 of each tool's last output against the bf16 reference (`quantkit eval`,
WikiText-2 test, ctx 512, BENCH_CHUNKS (20) chunks). llm-compressor lives in its own venv (.cache/llmc-venv: the
CPU torch wheel, llmcompressor pinned), made on first use.
Job gptq-tinyllama (not in the default list): quantkit's GPTQ w4 g64 asym of a TinyLlama-1.1B-shaped bf16 checkpoint
(random weights, Scripts/bench memory's) on the same number of windows, wall time and peak RSS only (random weights
have no quality to compare; BENCH_TINY_REPEATS runs, default 1: one run takes about half an hour).
Environment: BENCH_REPEATS, BENCH_JOBS ("gptq gptq-act awq"), BENCH_SAMPLES (128), BENCH_CHUNKS (20),
BENCH_AWQ_SEARCH (quantkit's --awq-search-samples: the windows its AWQ scale search measures the attention and MLP
losses on; default all, as llm-compressor, whose search always uses every window)."""
import json, os, shutil, statistics, subprocess, sys
sys.path.insert(0, os.path.dirname(__file__))
from bench_common import run, table

qk = os.environ.get("QUANTKIT_BIN", ".build/release/quantkit")
repeats = int(os.environ.get("BENCH_REPEATS", "3"))
jobs = os.environ.get("BENCH_JOBS", "gptq gptq-act awq").split()
samples = os.environ.get("BENCH_SAMPLES", "128")
chunks = os.environ.get("BENCH_CHUNKS", "20")
awq_search = os.environ.get("BENCH_AWQ_SEARCH")
group = "64"
smol = "models/smollm2-135m-instruct"
cal = "../shared/data/wikitext-2-raw/wiki.valid.raw"
test = "../shared/data/wikitext-2-raw/wiki.test.raw"
out = "bench-out/calibrate"
venv = ".cache/llmc-venv"
pins = ["torch==2.13.0+cpu", "llmcompressor==0.14.0.1"]
env = dict(os.environ, QUANTKIT_THREADS="2", OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")

if not os.path.exists(smol + "/config.json"):
    subprocess.check_call(["Scripts/fetch-model"])
if not os.path.exists(cal):
    cal = "Calibration/wikitext2-valid-excerpt.txt"
py = f"{venv}/bin/python"
if not os.path.exists(py) or subprocess.run([py, "-c", "import llmcompressor"], capture_output=True).returncode != 0:
    print("making the llm-compressor venv (" + ", ".join(pins) + ")", flush=True)
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([f"{venv}/bin/pip", "install", "-q"] + pins)
version = subprocess.run([py, "-c", "import llmcompressor, torch; print(llmcompressor.__version__, torch.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
os.makedirs(out, exist_ok=True)
calib = ["--calibration", cal, "--samples", samples, "--seq-len", "512", "--seed", "0"]
windows = f"{out}/windows-{samples}.json"
with open(windows, "w") as f:
    subprocess.check_call([qk, "bench-windows", smol] + calib, stdout=f)
print(f"{samples} windows of 512 tokens from {cal}; llm-compressor {version}"
      + (f"; quantkit's AWQ scale search on the first {awq_search} of them" if awq_search else ""), flush=True)


def ours(job, dest):
    method = ["--format", "awq", "--method", "awq"] if job == "awq" else ["--format", "gptq", "--method", "gptq"]
    if job == "awq" and awq_search:
        method += ["--awq-search-samples", awq_search]
    # act-order as llm-compressor's "static" (quantkit's default too): groups in column order, their parameters from the
    # unmodified weights; the plain job quantizes the columns in their stored order, as llm-compressor with actorder=None
    act = ["--act-order", "--static-groups"] if job == "gptq-act" else ["--no-act-order"]
    shutil.rmtree(dest, ignore_errors=True)
    return run([qk, "quantize", smol, "-o", dest] + method + act + ["--bits", "4", "--group-size", group, "--asym"] + calib, env)


def theirs(job, dest):
    shutil.rmtree(dest, ignore_errors=True)
    wall, rss, o = run([py, "Scripts/bench_llmc.py", smol, windows, dest, job, group], env, capture=True)
    return wall, rss, json.loads(o.strip().splitlines()[-1])["oneshot_seconds"]


def tinyllama():
    """quantkit GPTQ of the TinyLlama-shaped checkpoint: (wall seconds per run, peak RSS, checkpoint bytes)."""
    src = "bench-out/tinyllama-1.1b-synth"
    if not os.path.exists(src + "/config.json"):
        subprocess.check_call([qk, "synth", "tinyllama-1.1b", "-o", src])
        for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
            shutil.copyfile("Formats/golden/micro-llama-hf/" + f, f"{src}/{f}")
    size = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src) if f.endswith(".safetensors"))
    dest, walls, peak = f"{out}/quantkit-gptq-tinyllama", [], 0
    for r in range(int(os.environ.get("BENCH_TINY_REPEATS", "1"))):
        shutil.rmtree(dest, ignore_errors=True)
        w, rss = run([qk, "quantize", src, "-o", dest, "--format", "gptq", "--method", "gptq", "--bits", "4",
                      "--group-size", group, "--asym", "--no-act-order"] + calib, env)
        walls.append(w); peak = max(peak, rss)
        print(f"gptq-tinyllama run {r + 1}: quantkit {w:.1f} s, peak RSS {rss / 2**20:.0f} MiB", flush=True)
    return walls, peak, size


rows, report, cands = [], {}, []
if "gptq-tinyllama" in jobs:
    walls, peak, size = tinyllama()
    report["gptq-tinyllama"] = {"quantkit_s": walls, "quantkit_rss": peak, "checkpoint_bytes": size}
    table([["gptq-tinyllama", f"{statistics.median(walls):.1f} s ({min(walls):.0f}-{max(walls):.0f})",
            f"{peak / 2**20:.0f} MiB", f"{size / 2**20:.0f} MiB"]],
          ["job (w4 g64 asym, TinyLlama-1.1B shapes)", "quantkit wall", "peak RSS", "bf16 checkpoint"])
    jobs = [j for j in jobs if j != "gptq-tinyllama"]
    if not jobs:
        json.dump(report, open(f"{out}/report-tinyllama.json", "w"), indent=1)
        sys.exit(0)
for job in jobs:
    q, l, lo, q_rss, l_rss = [], [], [], 0, 0
    for r in range(repeats):
        w, rss = ours(job, f"{out}/quantkit-{job}")
        q.append(w); q_rss = max(q_rss, rss)
        w, rss, one = theirs(job, f"{out}/llmc-{job}")
        l.append(w); lo.append(one); l_rss = max(l_rss, rss)
        print(f"{job} run {r + 1}: quantkit {q[-1]:.1f} s, llm-compressor {l[-1]:.1f} s (oneshot {one:.1f} s)", flush=True)
    qm, lm, lom = statistics.median(q), statistics.median(l), statistics.median(lo)
    report[job] = {"quantkit_s": q, "llmc_s": l, "llmc_oneshot_s": lo, "quantkit_rss": q_rss, "llmc_rss": l_rss}
    rows.append([job, f"{qm:.1f} s ({min(q):.0f}-{max(q):.0f})", f"{q_rss / 2**20:.0f} MiB",
                 f"{lm:.1f} s ({min(l):.0f}-{max(l):.0f}), oneshot {lom:.1f} s", f"{l_rss / 2**20:.0f} MiB", f"{qm / lm:.2f}x"])
    cands += [f"{out}/quantkit-{job}", f"{out}/llmc-{job}"]

table(rows, ["job (w4 g64 asym)", "quantkit wall", "RSS", "llm-compressor wall", "RSS", "time ratio"])
subprocess.check_call([qk, "eval", smol] + cands + ["--text", test, "--ctx", "512", "--chunks", chunks, "--json", f"{out}/eval.json"],
                      stdout=subprocess.DEVNULL, env=env)
e = json.load(open(f"{out}/eval.json"))
print(f"\nreference bf16 PPL {e['reference']['ppl']:.4f}, {chunks} chunks of 512")
table([[os.path.basename(c["path"].rstrip("/")), f"{c['ppl']:.4f}", f"{c['kld_mean']:.5f}", f"{c['same_top1_percent']:.2f}",
        f"{c['bits_per_weight']:.2f}"] for c in e["candidates"]], ["output", "PPL", "KLD", "top-1 %", "bpw"])
report["eval"] = e["candidates"]
json.dump(report, open(f"{out}/report.json", "w"), indent=1)
