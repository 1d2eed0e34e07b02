// Exports of a trained model to other programs' formats (docs/export.md):
// llama2.c's legacy checkpoint (src/llama2c.c), GGUF version 3 for llama.cpp
// (src/export_gguf.c) and a Hugging Face LlamaForCausalLM folder
// (src/export_hf.c). One table says what each target can run; every writer
// checks it first, so a model a target cannot run is refused with one line.
// Every file is written atomically (a temporary, then a rename), and a folder
// is built as a temporary folder and renamed into place.
#ifndef EXPORT_H
#define EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "bpe.h"
#include "common.h"
#include "model.h"

typedef enum { EXPORT_LLAMA2C, EXPORT_GGUF, EXPORT_HF, N_EXPORT_FORMATS } ExportFormat;

// "llama2c", "gguf", "hf"; -1 for an unknown name.
const char *export_format_name(ExportFormat f);
int export_format_parse(const char *name);

// Refuses (one line, naming path and the feature) a model the target cannot
// run: the norm kind, llama2.c's fixed epsilon and RoPE theta, a BPE
// vocabulary for llama2.c. The one place that lists what a target supports.
int export_check(const Model *m, ExportFormat f, const char *path, Error *err);

// The model's vocabulary as byte strings: its BPE tokenizer (merges included),
// or the 256 byte tokens of a byte model. Refuses a vocabulary in which two
// tokens have the same bytes (llama.cpp and Hugging Face look tokens up by
// their text) and a model with another vocabulary (a llama2.c tokenizer).
typedef struct {
    Bpe bpe; // vocab_size = 256 + n_merges
} ExportVocab;
int export_vocab(ExportVocab *v, const Model *m, const char *path, Error *err);
void export_vocab_free(ExportVocab *v);

// GPT-2's byte-level alphabet (bytes_to_unicode): token bytes as the UTF-8 of
// one printable code point per byte, the form llama.cpp and Hugging Face's
// byte-level BPE store token strings in. out must hold 2 * n bytes; returns
// the length written.
size_t byte_level_text(const unsigned char *bytes, size_t n, char *out);

// f32 -> IEEE half, round to nearest even (overflow to inf, NaN kept NaN).
uint16_t f32_to_f16(float x);
// x[0..n) -> h as float16 for an --f16 export; refuses (naming path, the
// tensor and the index) a finite value that would become inf: beyond 65504,
// the largest half, from 65520 on, which rounds up to inf.
int f16_convert(uint16_t *h, const float *x, size_t n, const char *tensor, const char *path, Error *err);
// The same refusal before anything is written, over every tensor format f
// stores as float16 (GGUF: the matrices; Hugging Face: all).
int export_f16_check(const Model *m, ExportFormat f, const char *path, Error *err);

// The tensors of an RMSNorm model in export order (embedding, each layer's,
// final norm, untied head), with their names in GGUF and Hugging Face and
// their shape: rows x cols row-major (cols = 1 for the norm vectors), i.e.
// (out, in) for a matrix. rope_heads > 0 marks wq / wk: heads of adjacent
// RoPE pairs, which Hugging Face wants permuted to rotate halves.
typedef struct {
    char gguf[64], hf[80];
    const float *data;
    size_t rows, cols;
    int rope_heads;
} ExportTensor;
// Fills *out (caller frees) with *n tensors; -1 when out of memory.
int export_tensors(const Model *m, ExportTensor **out, int *n, Error *err);

// GGUF version 3, architecture llama; f16 stores the matrices as F16 (the norm
// vectors stay F32, as llama.cpp's converter does).
// Writes m in llama2.c's legacy format (src/export_llama2c.c). Refuses what
// llama2.c cannot express (export_check: DyT, an epsilon or RoPE theta other
// than llama2.c's fixed ones, a BPE vocabulary).
int llama2c_export(const Model *m, const char *path, Error *err);
int gguf_export(const Model *m, const char *path, int f16, Error *err);
// 0 when path is a GGUF file as gguf_export writes them, whole (an OursFn of files.h).
int gguf_probe(const char *path, void *ctx, Error *err);
// A Hugging Face folder: model.safetensors, config.json, tokenizer.json,
// tokenizer_config.json, generation_config.json.
int hf_export(const Model *m, const char *dir, int f16, Error *err);

// A growable byte buffer for headers (export writers).
typedef struct {
    unsigned char *p;
    size_t n, cap;
    int failed; // an allocation failed: the buffer is incomplete
} Buf;
void buf_put(Buf *b, const void *p, size_t n);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(Buf *b);

#endif
