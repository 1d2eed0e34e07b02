// Text data for training: the vocabulary behind one small interface (bytes,
// a byte-level BPE vocabulary (bpe.h), or llama2.c's sentencepiece vocabulary
// for its models); texts (a file, a folder, a list; memory-mapped) and their
// token caches; the dataset with its split or --val-data, random training
// windows and fixed validation windows; a checkpoint's data record.
#ifndef DATA_H
#define DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "bpe.h"
#include "rng.h"
#include "sptok.h"

// The vocabulary behind encode/decode: byte-level (256 tokens, token = byte
// value), a byte-level BPE vocabulary (bpe.h; this project's models with
// --vocab-size > 256) or a llama2.c tokenizer (sptok.h). The caller loads a
// BPE or llama2.c vocabulary and keeps it alive while the Tokenizer points at it.
typedef enum { TOK_BYTES, TOK_SP, TOK_BPE } TokenizerKind;

typedef struct {
    TokenizerKind kind;
    int vocab_size;
    const SpTok *sp;        // TOK_SP
    const Bpe *bpe;         // TOK_BPE
    unsigned char raw[256]; // TOK_BYTES: raw[b] == b, what tokens decode to
} Tokenizer;

Tokenizer tokenizer_bytes(void);
Tokenizer tokenizer_sp(const SpTok *sp);
Tokenizer tokenizer_bpe(const Bpe *bpe);
// Room `tokens` needs for a text of n bytes (llama2.c adds BOS and a space).
size_t tokenizer_max_tokens(const Tokenizer *tk, size_t n);
// Bytes: one token per byte. BPE: bpe_encode. llama2.c: BOS, then the pieces of " " + text.
int tokenizer_encode(const Tokenizer *tk, const unsigned char *text, size_t n, int *tokens, size_t *n_tokens,
                     Error *err);
// The bytes `token` prints as when it follows `prev`; returns their count.
size_t tokenizer_decode(const Tokenizer *tk, int prev, int token, const unsigned char **bytes);
// Whether generation ends at this token (llama2.c's BOS and EOS; bytes: never).
int tokenizer_is_stop(const Tokenizer *tk, int token);

// Reads a whole file into memory (regular files only), followed by a NUL
// byte not counted in *n. Caller frees *data.
int read_file(const char *path, unsigned char **data, size_t *n, Error *err);
// Encodes text[0..n) into *tokens (malloc'd, caller frees) and their count;
// the memory is checked before it is asked for, and errors name `name`.
int encode_text(const Tokenizer *tk, const unsigned char *text, size_t n, const char *name, int **tokens,
                size_t *n_tokens, Error *err);
// Reads a text file and encodes it: *tokens (caller frees) and their count.
int encode_file(const char *path, const Tokenizer *tk, int **tokens, size_t *n_tokens, Error *err);

// A file mapped read-only into memory: its pages are read when touched and
// belong to the page cache (a 2 GB text costs no 2 GB of heap). Regular
// files only; never blocks on a FIFO.
typedef struct {
    unsigned char *p; // NULL for an empty file
    size_t n;
} Mapped;
int map_file(Mapped *m, const char *path, Error *err);
void unmap_file(Mapped *m);
// A token cache mapped and validated (tokcache_parse): 0, -1 (a broken file)
// or 1 (untrustworthy: an old version or damaged tokens; message in err).
int tokcache_open(Mapped *m, const char *path, TokCacheInfo *info, const uint16_t **tokens, Error *err);

// Documents are joined by these bytes: a newline, the ASCII record separator
// 0x1E and a newline. Under the BPE pre-split rule 0x1E is a word of its own
// (newlines on both sides), so no token spans two documents but newlines.
#define DOC_SEPARATOR "\n\x1e\n"
#define DOC_SEPARATOR_BYTES 3

typedef struct {
    char *path;
    uint64_t size, hash; // bytes and FNV-1a 64 of the file
} DataDoc;

// A text to train or validate on, named by a spec: a file; a folder (its
// regular files in byte order of their names, not descending into folders,
// skipping names that start with '.' and this program's own files *.bpeN,
// *.bpeN.tok and *.tmp); or files separated by commas (a spec that names an
// existing file or folder is that one, commas and all). One file is
// memory-mapped; several are joined in memory with DOC_SEPARATOR between.
typedef struct {
    const char *spec;           // as given
    char base[4096];            // the vocabulary and cache go beside it: BASE.bpeN, BASE.bpeN.tok
    DataDoc *docs;              // the files, in order
    int n_docs;
    const unsigned char *bytes; // the text (n bytes): the mapped file, or the joined documents
    size_t n;
    uint64_t fingerprint;       // FNV-1a 64 of the text: what checkpoints and caches key on
    Mapped map;
    unsigned char *joined;
} TextFile;
int text_open(TextFile *t, const char *spec, Error *err);
void text_close(TextFile *t);

// Tokens as stored: bytes straight from the text (the byte vocabulary) or
// uint16 ids (BPE: the mapped token cache, or freshly encoded).
typedef struct {
    const unsigned char *u8;
    const uint16_t *u16;
    size_t n;
} Tokens;

typedef struct {
    Tokens train, val;          // windows are drawn from train; val holds the fixed validation windows
    uint64_t fingerprint;       // of the training text
    uint64_t val_fingerprint;   // of the validation text; 0 when validating on the training text's last 10%
    double val_bytes_per_token; // text bytes per validation token (for bits per byte)
    char note[2048];            // what happened to the token caches (for the caller to print), or ""
    Mapped maps[2];             // mapped token caches (training, validation)
    uint16_t *owned[2];         // freshly encoded tokens
} Dataset;

// Without val (NULL) the first 90% of the text's tokens train and the last
// 10% validate; with val all of text trains and val validates. Each part
// must hold a window of seq_len + 1 tokens. Bytes train straight from the
// text (which must outlive ds). BPE: a text's tokens come from its token
// cache BASE.bpeN.tok when that is valid, matches the text and the tokenizer
// and decodes to the text; otherwise the text is encoded in chunks and the
// cache (re)written (a damaged cache: with a warning). A cache that breaks
// the format is an error; one that cannot be written only a note. verbose:
// progress lines on stderr while a large text is encoded.
int dataset_load(Dataset *ds, const TextFile *text, const TextFile *val, const Tokenizer *tk, int seq_len,
                 int verbose, Error *err);
void dataset_free(Dataset *ds);

// The texts larger than this train their BPE vocabulary on a sample of this
// many bytes (64 MiB; the environment variable LLAMA_TEST_BPE_SAMPLE_BYTES
// sets it, for tests): 64 pieces spread evenly over the text, each cut at
// word boundaries (bpe_split_point).
#define BPE_SAMPLE_BYTES ((size_t)64 << 20)
#define BPE_SAMPLE_PIECES 64

// The BPE vocabulary of vocab_size tokens for the text, kept beside it as
// BASE.bpeN: read when that file was trained on this very text (size and
// FNV-1a) with this size, else trained (on a sample, above) and written
// there (a write failure is only a note). A file there that is not a valid
// tokenizer file is an error.
int bpe_for_text(Bpe *b, const TextFile *text, int vocab_size, int verbose, char *note, size_t note_cap, Error *err);

// The data of a run as its checkpoint records it (docs/format.md, "data
// record"): the --data and --val-data specs as given and every file's size
// and fingerprint, so that a resume finds its data without --data and names
// the file that changed.
#define DATA_PATH_MAX 4095 // bytes of a recorded path
typedef struct {
    char *data_spec, *val_spec; // val_spec NULL: validation on the last 10%
    DataDoc *docs;              // the training text's files, then the validation text's
    int n_docs, n_val_docs;
} DataRecord;
int data_record_pack(const TextFile *text, const TextFile *val, unsigned char **out, size_t *n, Error *err);
int data_record_parse(DataRecord *r, const unsigned char *d, size_t n, const char *name, Error *err);
void data_record_free(DataRecord *r);
// Checks that the texts have the recorded files' contents; the error names the first that differs.
int data_record_check(const DataRecord *r, const TextFile *text, const TextFile *val, Error *err);

// Random training windows (in ds->train), counter-based: row g of step `step` (g counts the
// step's rows over all micro-batches and all processes) is drawn from its own
// stream rng_at(key, step, g). So a row's window does not depend on how the
// rows are split into micro-batches or across processes, and the key and the
// step are the whole sampling state. Fills rows row0 .. row0+B-1: inputs
// (B,T), targets (B,T) = inputs shifted by one.
void dataset_train_rows(const Dataset *ds, uint64_t key, int64_t step, int64_t row0, int B, int T,
                        int *inputs, int *targets);
// Validation batch `index` of `n_batches` of `global_B` rows each: fixed
// windows spread evenly over ds->val (the same in every run with
// the same global_B and T); fills its rows row0 .. row0+B-1 (a process's share).
void dataset_val_rows(const Dataset *ds, int index, int n_batches, int64_t global_B, int64_t row0, int B, int T,
                      int *inputs, int *targets);

#endif
