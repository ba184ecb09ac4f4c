"""gguf-py reads quantkit's GGUF files; every tensor must equal the values computed independently here
from the source checkpoint (numpy: bf16 widening, the q/k permutation, gguf-py's own quantizers)."""
import json, struct, sys
import numpy as np
import gguf
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

work, micro_dir, smol_q41 = sys.argv[1], sys.argv[2], sys.argv[3]

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = np.asarray(data[base + b: base + e])
        if info["dtype"] == "BF16":
            v = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            v = raw.view(np.float16).astype(np.float32)
        else:
            v = raw.view(np.float32)
        out[name] = v.reshape(info["shape"])
    return out

def permute(w, heads):
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

HF = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
PART = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}

def hf_name(g):
    base = g[: -len(".weight")]
    if base in HF:
        return HF[base] + ".weight"
    _, layer, part = base.split(".")
    return f"model.layers.{layer}.{PART[part]}.weight"

def expected(src, g, qtype, n_head, n_kv):
    w = src[hf_name(g)].astype(np.float32)
    if g.endswith("attn_q.weight"):
        w = permute(w, n_head)
    if g.endswith("attn_k.weight"):
        w = permute(w, n_kv)
    if qtype in (T.F32,):
        return w
    return dequantize(quantize(w, qtype), qtype)

def check(path, src, n_head, n_kv):
    r = GGUFReader(path)
    n = 0
    for t in r.tensors:
        got = dequantize(t.data, t.tensor_type).reshape(-1)
        want = expected(src, t.name, t.tensor_type, n_head, n_kv).reshape(-1)
        if got.shape != want.shape or not np.array_equal(got, want):
            bad = np.flatnonzero(got != want)[:5] if got.shape == want.shape else "shape"
            raise SystemExit(f"interop FAIL {path}: tensor {t.name} ({t.tensor_type.name}) differs at {bad}")
        n += 1
    print(f"interop ok: gguf-py read {path.split('/')[-1]}: {n} tensors equal to independently computed values")
    return r

micro = read_safetensors(f"{micro_dir}/model.safetensors")
for t in ["f32", "f16", "bf16", "q8_0"]:
    check(f"{work}/micro-{t}.gguf", micro, 4, 2)

# SmolLM2: our bf16/q8_0 GGUFs of the exported checkpoint against the original Q4_1 file, dequantized by gguf-py
# and rounded to bf16 the way the exported checkpoint stores it.
orig = GGUFReader(smol_q41)
src = {}
# exact inverse of the q/k permutation
def unpermute(w, heads):
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
for t in orig.tensors:
    w = dequantize(t.data, t.tensor_type).astype(np.float32)
    bits = w.view(np.uint32).astype(np.uint64)
    w = ((((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16) << 16).astype(np.uint32)).view(np.float32)
    if t.name.endswith("attn_q.weight"):
        w = unpermute(w, 9)
    if t.name.endswith("attn_k.weight"):
        w = unpermute(w, 3)
    src[hf_name(t.name)] = w
for t in ["bf16", "q8_0"]:
    r = check(f"{work}/smol-{t}.gguf", src, 9, 3)
    for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.chat_template", "tokenizer.ggml.pre"]:
        a, b = orig.fields[key].contents(), r.fields[key].contents()
        if a != b:
            raise SystemExit(f"interop FAIL: {key} differs from the original SmolLM2 file")
print("interop: all checks passed")
