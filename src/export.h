// Exports of a trained model to other programs' formats (docs/export.md):
// llama2.c's legacy checkpoint (src/llama2c.c), GGUF version 3 for llama.cpp
// (src/export_gguf.c), a Hugging Face LlamaForCausalLM folder
// (src/export_hf.c), and our own model.bin (src/export_model.c: the
// converter between fp32 and bf16 weights). One table, EXPORT_TARGETS, holds a
// row per target: its --format name, what runs it, which weight types
// (--dtype) it stores and how, the model features it lacks and its writer. --format, --help, the usage errors, the dispatch and
// the refusals all read it; every writer checks its row first, so a model a
// target cannot run is refused with one line.
// Every file is written atomically (a temporary, then a rename), and a folder
// is built as a temporary folder and renamed into place.
#ifndef EXPORT_H
#define EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "bpe.h"
#include "common.h"
#include "llama2c.h"
#include "model.h"

typedef enum { EXPORT_LLAMA2C, EXPORT_GGUF, EXPORT_HF, EXPORT_MODEL, N_EXPORT_FORMATS } ExportFormat;

// The weights' type in the output (--dtype; --f16 is --dtype fp16).
enum { OUT_FP32, OUT_FP16, OUT_BF16, N_OUT_DTYPES };
const char *out_dtype_name(int i); // "fp32", "fp16", "bf16"; NULL past the last (--dtype's choices)
const char *export_dtype_text(int dtype); // a writer's "wrote" line: "float32", "float16", "bfloat16"

// The model features some target cannot run. EXPORT_FEATURES[feature] tells
// whether a model has it, writing what it is into `what` for the refusal.
enum { FEAT_OTHER_NORM, FEAT_EMB_SCALE, FEAT_RESIDUAL_GATE, FEAT_OTHER_MLP, FEAT_OTHER_EPS, FEAT_OTHER_THETA,
       FEAT_BPE, N_EXPORT_FEATURES };
#define FEAT_BIT(feature) (1u << (feature))
typedef int (*ExportFeature)(const Model *m, char *what, size_t cap);
extern const ExportFeature EXPORT_FEATURES[]; // unsized: export.c asserts a row per FEAT_

// What a writer is asked to write.
typedef struct {
    const char *out;          // --out
    int dtype;                // OUT_*: --dtype (fp16 or bf16 only for a target whose row stores it)
    const char *tokenizer;    // -z: a llama2.c tokenizer file, or NULL
    ModelFormat model_format; // what the model was read from (ours or a llama2.c checkpoint)
} ExportArgs;

// Which tensors a 16-bit type (fp16, bf16) is stored for; the others stay fp32.
// HALF_NONE: the target has no such weights (--dtype refused).
enum { HALF_NONE, HALF_MATRICES, HALF_ALL };
// The vocabulary a target writes: byte-level BPE (ours, export_vocab), a
// llama2.c tokenizer (ours as one, or -z's: the targets that take -z), or
// the model's own as the model carries it (our model.bin: nothing to convert).
enum { VOCAB_LLAMA2C, VOCAB_BPE, VOCAB_OWN };
#define NO_NAMES ((size_t)-1)

typedef struct {
    const char *name;   // --format NAME
    const char *help;   // said beside the name in --format's help ("gguf (llama.cpp)"), or NULL
    const char *reader; // --help's opening lines: what reads the files
    const char *target; // refusals: what runs the model ("..., which llama.cpp's llama architecture cannot run")
    int folder;         // --out is a folder, not a file (--help)
    int f16, bf16;      // HALF_*: the tensors --dtype fp16 and bf16 store so, as its writer does:
                        // export_dtype_check refuses a weight beyond the type's range before anything is written
    size_t names;       // offsetof(ExportTensor, gguf or hf): the tensor names its --dtype refusals use;
                        // NO_NAMES: none (float32 only, or a writer that refuses as it converts)
    int vocab;          // VOCAB_*
    unsigned lacks;     // FEAT_BIT()s of the model features it cannot run (export_check)
    // Checks the model against the row, writes, and says on stderr what it wrote.
    int (*write)(const Model *m, const ExportArgs *a, Error *err);
} ExportTarget;
extern const ExportTarget EXPORT_TARGETS[]; // a row per ExportFormat; unsized: export.c asserts the count

// The format named `name`, or -1.
int export_format_parse(const char *name);
// The targets whose bit (1u << ExportFormat) is set in `which`, for --help and
// messages: their names (LIST_NAMES), names with their help ("gguf
// (llama.cpp)", LIST_HELP) or readers (LIST_READERS), joined by sep, the
// last two by last: "llama2c, gguf or hf". Cut to fit cap.
enum { LIST_NAMES, LIST_HELP, LIST_READERS };
void export_list(char *buf, size_t cap, unsigned which, int item, const char *sep, const char *last);

// Refuses (one line, naming path and the feature) a model the target cannot
// run: a feature its row lacks (the norm kind, llama2.c's fixed epsilon and
// RoPE theta, a BPE vocabulary for llama2.c).
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
// The same for bf16 (--dtype bf16; bf16.h's rounding): beyond 3.39e38.
int export_bf16_convert(uint16_t *h, const float *x, size_t n, const char *tensor, const char *path, Error *err);
// Which tensors format f stores as dtype (OUT_*): HALF_ALL for fp32 (every
// target stores it), else its row's f16 or bf16 column (HALF_NONE: it has none).
int export_half(ExportFormat f, int dtype);
// The same refusal before anything is written, over every tensor format f
// stores as dtype (OUT_*; its row's f16 or bf16: GGUF the matrices, Hugging
// Face all). Nothing to check for fp32, or for a row without tensor names.
int export_dtype_check(const Model *m, ExportFormat f, int dtype, const char *path, Error *err);

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

// The writers of the table's rows (ExportTarget.write).
// llama2.c's legacy format and its tokenizer beside it (OUT.bin ->
// OUT.tokenizer.bin): our byte vocabulary, or -z's for a llama2.c model.
int llama2c_export_files(const Model *m, const ExportArgs *a, Error *err);
// GGUF version 3, architecture llama; f16 stores the matrices as F16 (the norm
// vectors stay F32, as llama.cpp's converter does).
int gguf_export(const Model *m, const ExportArgs *a, Error *err);
// A Hugging Face folder: model.safetensors, config.json, tokenizer.json,
// tokenizer_config.json.
int hf_export(const Model *m, const ExportArgs *a, Error *err);
// Our model.bin (modelio.h's model_save_as) with fp32 or bf16 weights.
int model_export(const Model *m, const ExportArgs *a, Error *err);

// The model alone in llama2.c's legacy format (src/export_llama2c.c). Refuses
// what llama2.c cannot express (export_check: DyT, an epsilon or RoPE theta
// other than llama2.c's fixed ones, a BPE vocabulary).
int llama2c_export(const Model *m, const char *path, Error *err);
// 0 when path is a GGUF file as gguf_export writes them, whole (an OursFn of files.h).
int gguf_probe(const char *path, void *ctx, Error *err);

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
