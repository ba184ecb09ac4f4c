"""Scripts/bench tokenizer: tokenizer speed on WikiText-2's test split (1.29 MB) for every vocabulary quantkit supports
(llama.cpp's own test vocabularies, models/ggml-vocab-*.gguf), beside llama-tokenize on the same file and flags
(no BOS, specials as text), with the ids compared.

Two numbers per vocabulary, medians of BENCH_REPEATS (default 5) runs:
- encode MB/s: `quantkit bench-tokenizer` times the encode call alone (the vocabulary already loaded);
- tokenize MB/s of each tool as a process: (time on the file − time on an empty file), so loading the vocabulary and
  starting the process are not counted, printing the ids is; the ratio is quantkit's over llama-tokenize's."""
import json, os, statistics, subprocess, sys, time

repeats = int(os.environ.get("BENCH_REPEATS", "5"))
qk = os.environ.get("QUANTKIT_BIN", ".build/release/quantkit")
text = "../shared/data/wikitext-2-raw/wiki.test.raw"
size = os.path.getsize(text)
vocabs = ["llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2", "starcoder", "command-r", "mpt", "refact"]
llama_bin = subprocess.run(["Scripts/llama-tools"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
src = ".cache/llama.cpp/src/models"
empty = "bench-out/empty.txt"
os.makedirs("bench-out", exist_ok=True)
open(empty, "w").close()

def wall(cmd):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, out

def process_rate(cmd_for):
    """MB/s of a tokenizer process on the text, load and start-up subtracted; and its ids on the text."""
    full = []
    base = []
    ids = None
    for _ in range(repeats):
        w, out = wall(cmd_for(text))
        full.append(w)
        ids = out
        base.append(wall(cmd_for(empty))[0])
    return size / 1e6 / max(statistics.median(full) - statistics.median(base), 1e-9), ids

def parse_ids(out):
    line = [l for l in out.splitlines() if l.startswith("[")][-1]
    return json.loads(line)

rows, results = [], {}
for v in vocabs:
    gguf = f"{src}/ggml-vocab-{v}.gguf"
    enc = statistics.median(
        json.loads(subprocess.run([qk, "bench-tokenizer", gguf, text], check=True, capture_output=True, text=True).stdout)["mb_per_s"]
        for _ in range(repeats))
    q_rate, q_out = process_rate(lambda f: [qk, "tokenize", gguf, "--file", f, "--ids", "--no-bos", "--no-parse-special"])
    l_rate, l_out = process_rate(lambda f: [f"{llama_bin}/llama-tokenize", "-m", gguf, "-f", f, "--ids", "--no-bos",
                                            "--no-parse-special", "--log-disable"])
    q_ids, l_ids = parse_ids(q_out), parse_ids(l_out)
    same = q_ids == l_ids
    results[v] = {"encode_mb_per_s": enc, "quantkit_mb_per_s": q_rate, "llama_tokenize_mb_per_s": l_rate,
                  "tokens": len(q_ids), "ids_equal": same}
    rows.append([v, f"{enc:.1f}", f"{q_rate:.1f}", f"{l_rate:.1f}", f"{q_rate / l_rate:.2f}×", len(q_ids),
                 "yes" if same else f"NO ({len(q_ids)} vs {len(l_ids)})"])
    print(f"  {v}: done", file=sys.stderr)

sys.path.insert(0, os.path.dirname(__file__))
from bench_common import table
print(f"tokenizer bench: {text} ({size / 1e6:.2f} MB), medians of {repeats}, one thread, no BOS, specials as text")
table(rows, ["vocabulary", "encode MB/s", "quantkit MB/s", "llama-tokenize MB/s", "ratio", "tokens", "ids equal"])
json.dump(results, open("bench-out/tokenizer.json", "w"), indent=2)
if not all(r["ids_equal"] for r in results.values()):
    sys.exit("tokenizer bench: ids differ from llama-tokenize's")
