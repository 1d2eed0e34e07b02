#include "runlog.h"

#include <stdlib.h>
#include <string.h>

#include "data.h"  // read_file
#include "files.h" // write_file_atomic

// ----------------------------------------------------------------------------
// writing

// The per-site columns: the norm's learnable scalars (alpha_, s_),
// then for the saturating kinds the fraction of inputs in saturation (sat_,
// eval rows), then the residual gates (gate_). Each column group is
// PREFIX_attn_0.., PREFIX_ffn_0.., and PREFIX_final for the norm's.
enum { COL_PARAM, COL_SAT, COL_GATE };
typedef struct {
    const char *prefix;
    int what, np; // np: the norm parameter (COL_PARAM)
} ColGroup;

static int col_groups(const Model *m, ColGroup *g) {
    int n = 0;
    for (int p = 0; p < N_NORM_PARAMS; p++)
        if (NORM_PARAMS[p].log && m->sizes[site_tensor(SITE_FINAL, p)])
            g[n++] = (ColGroup){NORM_PARAMS[p].log, COL_PARAM, p};
    if (NORM_KINDS[m->cfg.norm].sat > 0) g[n++] = (ColGroup){"sat", COL_SAT, -1};
    if (m->cfg.residual_gate) g[n++] = (ColGroup){"gate", COL_GATE, -1};
    return n;
}

void log_header(FILE *f, const Model *m) {
    const ModelConfig *c = &m->cfg;
    ColGroup g[N_NORM_PARAMS + 2];
    int ng = col_groups(m, g);
    fprintf(f, "step,tokens,train_loss,val_loss,lr,grad_norm,ms,tok_s,elapsed_s");
    for (int i = 0; i < ng; i++) {
        for (int l = 0; l < c->n_layers; l++) fprintf(f, ",%s_attn_%d", g[i].prefix, l);
        for (int l = 0; l < c->n_layers; l++) fprintf(f, ",%s_ffn_%d", g[i].prefix, l);
        if (g[i].what != COL_GATE) fprintf(f, ",%s_final", g[i].prefix);
    }
    for (int l = 0; l < c->n_layers; l++) fprintf(f, ",std_attn_%d", l);
    for (int l = 0; l < c->n_layers; l++) fprintf(f, ",std_ffn_%d", l);
    fprintf(f, ",std_final,val_bpb\n");
}

void log_row(FILE *f, const Model *m, const LogRow *x) {
    const ModelConfig *c = &m->cfg;
    fprintf(f, "%lld,%lld,", (long long)x->step, (long long)x->tokens);
    if (x->has_train) fprintf(f, "%.6f", x->train_loss);
    fputc(',', f);
    if (x->has_val) fprintf(f, "%.6f", x->val_loss);
    if (x->has_train)
        fprintf(f, ",%.6g,%.6f,%.3f,%.1f,%.3f", x->lr, x->grad_norm, x->ms, x->tok_s, x->elapsed);
    else
        fprintf(f, ",,,,,%.3f", x->elapsed);
    ColGroup g[N_NORM_PARAMS + 2];
    int ng = col_groups(m, g), L = c->n_layers;
    for (int i = 0; i < ng; i++) {
        if (g[i].what == COL_PARAM) { // sites attn, ffn, final: their tensors hold L, L and 1 values
            for (int site = 0; site < N_SITES; site++)
                for (int l = 0; l < (site == SITE_FINAL ? 1 : L); l++)
                    fprintf(f, ",%.6f", m->w.t[site_tensor(site, g[i].np)][l]);
        } else if (g[i].what == COL_SAT) {
            for (int k = 0; k < 2 * L + 1; k++) {
                fputc(',', f);
                if (x->has_val) fprintf(f, "%.6f", x->stds[2 * L + 1 + k]);
            }
        } else {
            for (int l = 0; l < L; l++) fprintf(f, ",%.6f", m->w.t[T_ATTN_GATE][l]);
            for (int l = 0; l < L; l++) fprintf(f, ",%.6f", m->w.t[T_FFN_GATE][l]);
        }
    }
    for (int k = 0; k < 2 * c->n_layers + 1; k++) {
        fputc(',', f);
        if (x->has_val) fprintf(f, "%.6f", x->stds[k]);
    }
    fputc(',', f);
    if (x->has_val) fprintf(f, "%.6f", x->val_bpb);
    fputc('\n', f);
    fflush(f);
}

// ----------------------------------------------------------------------------
// kept on resume

enum { MAX_COLS = 16 * MAX_LAYERS }; // more columns than any log of this trainer has (they grow with the layers)

// The comma-separated cells of one line (no newline).
typedef struct {
    const char *p[MAX_COLS];
    size_t len[MAX_COLS];
    int n; // -1: more than MAX_COLS
} Cells;

static void split_cells(const char *s, size_t len, Cells *c) {
    for (c->n = 0; c->n < MAX_COLS; c->n++) {
        size_t e = 0;
        while (e < len && s[e] != ',') e++;
        c->p[c->n] = s, c->len[c->n] = e;
        if (e == len) {
            c->n++;
            return;
        }
        s += e + 1, len -= e + 1;
    }
    c->n = -1;
}

static int find_cell(const Cells *c, const char *s, size_t len) {
    for (int k = 0; k < c->n; k++)
        if (c->len[k] == len && !memcmp(c->p[k], s, len)) return k;
    return -1;
}

// A kept log read against this run's columns.
typedef struct {
    Cells old, ours, row; // the log's header, this run's, one row
    int from[MAX_COLS];   // this run's column c is the log's column from[c] (-1: absent)
    const char *src;      // the log's path, for messages
    char fix[160];        // how to resume anyway, for messages
} LogMap;

// A column of the log's header that this run does not write: named, with
// this run's columns the header lacks (one of them is likely its old name).
static int unknown_column(const LogMap *m, int k, Error *err) {
    char lacks[200] = "";
    size_t used = 0;
    for (int c = 0; c < m->ours.n && used < sizeof lacks; c++)
        if (m->from[c] < 0)
            used += (size_t)snprintf(lacks + used, sizeof lacks - used, "%s%.*s", used ? " " : "",
                                     (int)m->ours.len[c], m->ours.p[c]);
    return err_set(err, "%s: column %d '%.*s' is not one train_llama writes for this run (its columns missing "
                   "from the header: %s); give the column its name back, %s", m->src, k + 1,
                   (int)(m->old.len[k] < 64 ? m->old.len[k] : 64), m->old.p[k], lacks[0] ? lacks : "none", m->fix);
}

// Where each of this run's columns stands in the log's header. Every build
// only ever added columns (an older build's log lacks some, which stay
// empty), so a name this build does not write, a column twice, or a first
// column other than step means another tool changed the header: moving
// cells by it would blank whole columns, so it is refused, naming the column.
static int log_columns(LogMap *m, Error *err) {
    for (int c = 0; c < m->ours.n; c++) m->from[c] = -1;
    if (m->old.n < 0) return err_set(err, "%s: more than %d columns; %s", m->src, MAX_COLS, m->fix);
    int unknown = -1;
    for (int k = 0; k < m->old.n; k++) {
        int c = find_cell(&m->ours, m->old.p[k], m->old.len[k]);
        if (c >= 0 && m->from[c] >= 0)
            return err_set(err, "%s: column '%.*s' twice in the header; %s", m->src, (int)m->old.len[k],
                           m->old.p[k], m->fix);
        if (c >= 0) m->from[c] = k;
        else if (unknown < 0) unknown = k;
    }
    if (unknown >= 0) return unknown_column(m, unknown, err);
    if (m->from[0] != 0) return err_set(err, "%s: the first column is not step; %s", m->src, m->fix);
    return 0;
}

// Every kept row (text[start..end)) must have the header's cells and a step
// number first: a row another tool changed is refused, never spread over
// the wrong columns.
static int log_rows_check(LogMap *m, const char *text, size_t start, size_t end, Error *err) {
    for (size_t i = start, line = 2; i < end; line++) {
        size_t j = i;
        while (text[j] != '\n') j++;
        split_cells(text + i, j - i, &m->row);
        char num[24];
        int64_t step;
        if (m->row.n != m->old.n)
            return err_set(err, "%s line %zu: not the header's %d cells; mend the line, %s", m->src, line, m->old.n,
                           m->fix);
        size_t len = m->row.len[0] < sizeof num ? m->row.len[0] : sizeof num - 1;
        memcpy(num, m->row.p[0], len);
        num[len] = 0;
        if (len != m->row.len[0] || parse_i64(num, 0, INT64_MAX, &step))
            return err_set(err, "%s line %zu: step '%s' is not a step number; mend the line, %s", m->src, line, num,
                           m->fix);
        i = j + 1;
    }
    return 0;
}

// The kept rows under this build's header, cells moved by column name, this
// run's columns the log lacks left empty (into f).
static void log_rows_remap(LogMap *m, const char *text, size_t start, size_t end, FILE *f) {
    for (size_t i = start; i < end;) {
        size_t j = i;
        while (text[j] != '\n') j++;
        split_cells(text + i, j - i, &m->row);
        for (int c = 0; c < m->ours.n; c++) {
            int k = m->from[c];
            fprintf(f, "%s%.*s", c ? "," : "", k >= 0 ? (int)m->row.len[k] : 0, k >= 0 ? m->row.p[k] : "");
        }
        fputc('\n', f);
        i = j + 1;
    }
}

// The kept log (header and complete rows) checked against this run's
// columns (log_columns, log_rows_check); when its header is not this
// build's (an older build's, with fewer columns), its rows are rewritten
// under this build's header into *out, which *kept then points at.
static int log_remap(const char *header, int64_t step, const char *src, Chunk *kept, char **out, Error *err) {
    char *buf = NULL;
    size_t hn = strlen(header), bn = 0, eol = 0;
    const char *text = kept->p;
    LogMap *m = malloc(sizeof *m);
    if (!m) return err_set(err, "out of memory");
    while (eol < kept->n && text[eol] != '\n') eol++;
    m->src = src;
    snprintf(m->fix, sizeof m->fix, "or move the file away (the resume then starts a new log at step %lld)",
             (long long)step);
    split_cells(text, eol, &m->old);
    split_cells(header, hn - 1, &m->ours);
    // (an empty log has no header to check: it gets this build's)
    int rc = kept->n && (log_columns(m, err) || log_rows_check(m, text, eol + 1, kept->n, err)) ? -1 : 0;
    if (!rc && !(eol + 1 == hn && !memcmp(text, header, hn))) {
        FILE *f = open_memstream(&buf, &bn);
        if (!f) rc = err_set(err, "out of memory");
        else {
            fputs(header, f);
            log_rows_remap(m, text, eol + 1, kept->n, f);
            rc = fclose(f) ? err_set(err, "out of memory") : 0;
            *out = buf;
            *kept = (Chunk){buf, bn};
        }
    }
    free(m);
    return rc;
}

// CRLF line ends (a log re-saved by a tool that writes them) as LF, in
// place. Returns how many there were.
static size_t crlf_to_lf(unsigned char *text, size_t *n) {
    size_t w = 0, crlf = 0;
    for (size_t i = 0; i < *n; i++) {
        if (text[i] == '\r' && i + 1 < *n && text[i + 1] == '\n') crlf++;
        else text[w++] = text[i];
    }
    text[w] = 0;
    *n = w;
    return crlf;
}

// The complete lines of text[0..n) up to the row of `step` (a row cut short
// by a crash, without its line end, is not complete), each row passed to
// on_row. Returns where the kept lines end.
static size_t kept_end(const unsigned char *text, size_t n, int64_t step, KeptRowFn on_row, void *ctx) {
    size_t i = 0;
    for (int line = 0; i < n; line++) {
        size_t j = i;
        while (j < n && text[j] != '\n') j++;
        if (j == n) break; // a row cut short by a crash
        long long row_step = line == 0 ? -1 : strtoll((const char *)text + i, NULL, 10);
        if (row_step > step) break;
        if (line > 0) on_row(ctx, (const char *)text + i, j - i);
        i = j + 1;
    }
    return i;
}

// The kept rows replace dst atomically: a crash here cannot lose the log.
int log_keep(const char *dst, const char *src, const char *header, int64_t step, KeptRowFn on_row, void *ctx,
             FILE *notes, Error *err) {
    unsigned char *text;
    size_t n;
    if (read_file(src, &text, &n, err)) return -1;
    size_t crlf = crlf_to_lf(text, &n), i = kept_end(text, n, step, on_row, ctx);
    size_t dropped = 0; // lines past the kept ones: never cut without a word
    for (size_t k = i; k < n; k++) dropped += text[k] == '\n' || k + 1 == n;
    if (dropped && i && notes)
        fprintf(notes, "train_llama: %s: %zu line%s after step %lld dropped (rows past the checkpoint are redone; "
                "a last line without a line end is taken for one a crash cut short)\n", src, dropped,
                dropped == 1 ? "" : "s", (long long)step);
    Chunk kept = {text, i};
    char *remapped = NULL;
    int rc = n && !i ? err_set(err, "%s: no complete line (no \\n); move the file away (the resume then starts a new "
                               "log at step %lld)", src, (long long)step) : 0;
    if (!rc) rc = log_remap(header, step, src, &kept, &remapped, err) || write_file_atomic(dst, &kept, 1, err);
    free(text);
    free(remapped);
    if (rc) return -1;
    if (crlf && notes)
        fprintf(notes, "train_llama: %s: CRLF line ends (another tool's) read as LF; %s is written with LF\n", src,
                dst);
    return 0;
}
