#!/usr/bin/python3
"""Independent reference for the C encoder: BERT (Hugging Face BertModel layout) written directly against
PyTorch, with its own safetensors reader and its own WordPiece tokenizer (Python's unicodedata), padded batches
with an attention mask (the C engine packs sequences instead), mean pooling over the mask, L2 normalisation.

  oracle.py --model DIR --sentences FILE -o fixture.json      reference embeddings for every sentence
  oracle.py --model DIR --onnx model.onnx                      export the same network to ONNX (peer bench)

DIR holds config.json, vocab.txt and model.safetensors. Uses only Debian's python3-torch (and python3-onnx
for the export check)."""
import argparse
import hashlib
import json
import struct
import sys
import unicodedata

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        arr = np.frombuffer(raw[base + b : base + e], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        out[name.removeprefix("bert.")] = torch.from_numpy(arr.astype(np.float32) if t["dtype"] != "I64" else arr.copy())
    return out, hashlib.sha256(raw).hexdigest()


class WordPiece:
    """BERT uncased tokenization (BasicTokenizer + WordpieceTokenizer)."""

    def __init__(self, vocab_path):
        self.vocab = {}
        for i, line in enumerate(open(vocab_path, encoding="utf-8")):
            self.vocab.setdefault(line.rstrip("\n"), i)

    @staticmethod
    def _cjk(cp):
        return any(a <= cp <= b for a, b in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                             (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                             (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))

    @staticmethod
    def _punct(ch):
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    def _words(self, text):
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD:
                continue
            if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
                out.append(" ")
            elif unicodedata.category(ch).startswith("C"):
                continue
            elif self._cjk(cp):
                out.append(" " + ch + " ")
            else:
                out.append(ch)
        for word in "".join(out).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            piece = ""
            for c in word:
                if self._punct(c):
                    if piece:
                        yield piece
                    yield c
                    piece = ""
                else:
                    piece += c
            if piece:
                yield piece

    def encode(self, text, max_len):
        ids = []
        for w in self._words(text):
            if len(w) > 100:
                ids.append(self.vocab["[UNK]"])
                continue
            start, pieces = 0, []
            while start < len(w):
                end = len(w)
                while end > start:
                    sub = ("##" if start else "") + w[start:end]
                    if sub in self.vocab:
                        break
                    end -= 1
                if end == start:
                    pieces = [self.vocab["[UNK]"]]
                    break
                pieces.append(self.vocab[sub])
                start = end
            ids.extend(pieces)
        return [self.vocab["[CLS]"]] + ids[: max_len - 2] + [self.vocab["[SEP]"]]


class Bert(torch.nn.Module):
    def __init__(self, cfg, w):
        super().__init__()
        self.cfg, self.w = cfg, w
        self.heads = cfg["num_attention_heads"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        for k, v in w.items():  # registered so that ONNX export embeds them as initializers
            self.register_buffer(k.replace(".", "_"), v, persistent=False)

    def p(self, name):
        return getattr(self, name.replace(".", "_"))

    def lin(self, x, name):
        return F.linear(x, self.p(name + ".weight"), self.p(name + ".bias"))

    def ln(self, x, name):
        return F.layer_norm(x, (self.cfg["hidden_size"],), self.p(name + ".weight"), self.p(name + ".bias"), self.eps)

    def forward(self, ids, mask):
        B, T = ids.shape
        H = self.cfg["hidden_size"]
        d = H // self.heads
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
        x = (F.embedding(ids, self.p("embeddings.word_embeddings.weight"))
             + F.embedding(pos, self.p("embeddings.position_embeddings.weight"))
             + self.p("embeddings.token_type_embeddings.weight")[0])
        x = self.ln(x, "embeddings.LayerNorm")
        # Padding keys get a large negative bias, as transformers' extended attention mask does.
        bias = (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            q, k, v = (self.lin(x, p + "attention.self." + n).view(B, T, self.heads, d).transpose(1, 2)
                       for n in ("query", "key", "value"))
            a = torch.softmax(q @ k.transpose(-1, -2) / (d ** 0.5) + bias, dim=-1) @ v
            a = a.transpose(1, 2).reshape(B, T, H)
            x = self.ln(self.lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = F.gelu(self.lin(x, p + "intermediate.dense"))  # exact erf GELU
            x = self.ln(self.lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        m = mask.unsqueeze(-1).to(torch.float32)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def pad(batch):
    T = max(len(s) for s in batch)
    ids = torch.tensor([s + [0] * (T - len(s)) for s in batch], dtype=torch.int64)
    mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in batch], dtype=torch.int64)
    return ids, mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--sentences")
    ap.add_argument("-o", "--output")
    ap.add_argument("--onnx")
    a = ap.parse_args()
    cfg = json.load(open(a.model + "/config.json"))
    w, digest = load_safetensors(a.model + "/model.safetensors")
    model = Bert(cfg, w).eval()
    torch.set_num_threads(1)

    if a.onnx:
        ids, mask = pad([[101, 7592, 102], [101, 102]])
        torch.onnx.export(model, (ids, mask), a.onnx, input_names=["input_ids", "attention_mask"],
                          output_names=["embeddings"], opset_version=14,
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                        "embeddings": {0: "batch"}})
        import onnx
        onnx.checker.check_model(onnx.load(a.onnx))
        print(f"oracle: wrote {a.onnx}", file=sys.stderr)
    if a.sentences:
        sentences = json.load(open(a.sentences))
        tok = WordPiece(a.model + "/vocab.txt")
        seqs = [tok.encode(s, cfg["max_position_embeddings"]) for s in sentences]
        with torch.no_grad():
            emb = model(*pad(seqs))
            for i, s in enumerate(seqs):  # padding must not change anything
                alone = model(*pad([s]))[0]
                assert torch.max(torch.abs(alone - emb[i])) < 1e-5, "oracle: padded batch differs from single"
        fixture = {
            "generator": "tests/oracle/oracle.py (PyTorch %s)" % torch.__version__,
            "model_sha256": digest,
            "seed": 1,
            "dim": cfg["hidden_size"],
            "cases": [{"text": t, "ids": s, "embedding": [float("%.7g" % v) for v in e.tolist()]}
                      for t, s, e in zip(sentences, seqs, emb)],
        }
        with open(a.output, "w") as f:
            json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"oracle: {len(seqs)} sentences, model {digest[:16]}...", file=sys.stderr)


if __name__ == "__main__":
    main()
