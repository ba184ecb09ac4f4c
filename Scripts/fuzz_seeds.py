"""Writes the seed corpora of the fuzz targets into Formats/fuzz/<target>/ (small, valid inputs of each reader; named *.seed,
the targets write them wherever their reader expects a file)."""
import json, os, shutil, struct, sys
import numpy as np
import gguf

root = sys.argv[1] if len(sys.argv) > 1 else "Formats/fuzz"
def path(t, n):
    os.makedirs(f"{root}/{t}", exist_ok=True)
    return f"{root}/{t}/{n}"

# safetensors: three small tensors of different dtypes, with metadata
def st(tensors, meta=None):
    hdr, data = {}, b""
    if meta: hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data
open(path("safetensors", "three-dtypes-safetensors.seed"), "wb").write(st([
    ("a.weight", "F32", [2, 3], np.arange(6, dtype=np.float32).tobytes()),
    ("b.weight", "BF16", [4], (np.arange(4, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()),
    ("c", "F16", [2, 2], np.ones(4, dtype=np.float16).tobytes())], {"format": "pt"}))
open(path("safetensors", "empty-safetensors.seed"), "wb").write(st([]))

# GGUF: a tiny llama-style file with a 6-token vocabulary and an F32 and a Q8_0 tensor
w = gguf.GGUFWriter(path("gguf", "tiny-gguf.seed"), "llama")
w.add_block_count(1); w.add_context_length(64); w.add_embedding_length(32); w.add_feed_forward_length(64)
w.add_head_count(2); w.add_head_count_kv(1); w.add_layer_norm_rms_eps(1e-5)
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("smollm")
w.add_token_list(["<s>", "</s>", "a", "b", "ab", "Ġ"]); w.add_token_types([3, 3, 1, 1, 1, 1]); w.add_token_merges(["a b"])
w.add_bos_token_id(0); w.add_eos_token_id(1)
w.add_tensor("token_embd.weight", np.linspace(-1, 1, 6 * 32, dtype=np.float32).reshape(6, 32))
w.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(np.linspace(-1, 1, 32 * 32, dtype=np.float32).reshape(32, 32), gguf.GGMLQuantizationType.Q8_0),
             raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()

# tokenizer.json: byte-level BPE and SentencePiece-style BPE
bl = {"model": {"type": "BPE", "vocab": {"<|endoftext|>": 0, "a": 1, "b": 2, "ab": 3, "Ġ": 4, "Ġa": 5, "H": 6, "e": 7, "l": 8, "o": 9},
                "merges": ["a b", "Ġ a"], "byte_fallback": False},
      "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": True}],
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
      "post_processor": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"}}
json.dump(bl, open(path("tokenizer-json", "byte-level.json"), "w"))
sp = {"model": {"type": "BPE", "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "▁": 4, "a": 5, "▁a": 6},
                "merges": [["▁", "a"]], "byte_fallback": True, "unk_token": "<unk>"},
      "added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True}],
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}]}}
json.dump(sp, open(path("tokenizer-json", "sentencepiece-bpe.json"), "w"))

# config.json
shutil.copy("Formats/golden/micro-llama-hf/config.json", path("config-json", "micro.json"))
c = json.load(open("Formats/golden/micro-llama-hf/config.json"))
c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
c["tie_word_embeddings"] = True
json.dump(c, open(path("config-json", "llama3-rope-tied.json"), "w"))

# imatrix: the golden files (GGUF and legacy .dat)
shutil.copy("Formats/golden/micro-llama-k.imatrix.gguf", path("imatrix", "micro-imatrix-gguf.seed"))
shutil.copy("Formats/golden/micro-llama-k.imatrix.dat", path("imatrix", "micro.imatrix.dat"))
print("seeds written to", root)
