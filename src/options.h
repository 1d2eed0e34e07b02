// Table-driven command-line options, shared by both programs: strict number
// parsing (whole string, range checked, no NaN or inf), --help generated from
// the table with each default, and a record of which options were given.
#ifndef OPTIONS_H
#define OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "common.h"

typedef enum { OPT_INT, OPT_FLOAT, OPT_STR, OPT_FLAG } OptType;

typedef struct {
    const char *name; // "--dim"
    OptType type;
    size_t offset;    // of the value in the settings struct: int64_t, double, const char *, int
    double lo, hi;    // range of numbers
    const char *help;
    double def;          // default of a number or flag (NAN: a default that depends on others, said in help)
    const char *def_str; // default of a string (NULL: none)
    int repeat;          // may be given more than once: the last wins (else a repeat is refused)
    // A string with a fixed set of values: choice(i) is the i-th (NULL past
    // the last). Parsing refuses others; --help lists them; the trainer's run
    // block stores the index.
    const char *(*choice)(int i);
    // Columns of the trainer's table (settings.h); zero in the other programs'.
    int rec;        // REC_*: where a checkpoint records it
    int slot;       // REC_RUN: its run block slot
    int since;      // REC_RUN: the run block version that added it (older blocks read the default)
    int may_differ; // on --resume: may differ from the checkpoint (else must match)
    int applies;    // APPLIES_*: when it does anything
    int alone;      // an action that takes no other option (--print-config)
} Option;

// A table's rows name their type, flag, field (of the struct OPT_BASE, which
// the table's file defines), range and default; the other columns follow
// as designated initializers:
//   {OPTION_INT("--dim", dim, 2, 65536, 256), .help = "model width d"},
#define OPTION_INT(flag, f, lo_, hi_, d) \
    .name = flag, .type = OPT_INT, .offset = offsetof(OPT_BASE, f), .lo = lo_, .hi = hi_, .def = d
#define OPTION_FLOAT(flag, f, lo_, hi_, d) \
    .name = flag, .type = OPT_FLOAT, .offset = offsetof(OPT_BASE, f), .lo = lo_, .hi = hi_, .def = d
#define OPTION_STR(flag, f, d) .name = flag, .type = OPT_STR, .offset = offsetof(OPT_BASE, f), .def_str = d
#define OPTION_FLAG(flag, f) .name = flag, .type = OPT_FLAG, .offset = offsetof(OPT_BASE, f)

// Parses argv[1..] into the struct at `base` (pre-filled with defaults).
// An option's value is the next argument, or for a long option (--name) also
// --name=value in one; a flag (OPT_FLAG) refuses a value. Arguments not
// starting with '-' (and "-" alone) go to positional[] (at most max_pos).
// given[i] counts the times option i appears (up to 255). Returns 0, 1 for
// --help, 2 for --version, or -1 with a one-line message in err.
int options_parse(const Option *opts, int n, void *base, unsigned char *given,
                  int argc, char **argv, const char **positional, int max_pos, int *n_pos,
                  Error *err);
// A repeated option (given[i] > 1) whose row does not allow it: "--lr given
// 2 times: give it once". Returns 0 or -1.
int options_check_repeats(const Option *opts, int n, const unsigned char *given, Error *err);
// The table's defaults (def, def_str) into the struct at base.
void options_defaults(const Option *opts, int n, void *base);
// One line per option with its current (default) value.
void options_usage(FILE *f, const Option *opts, int n, const void *base);
// Checks every numeric option's value in `base` against its range (for
// settings read back from a file). Names the option in the error.
int options_check_ranges(const Option *opts, int n, const void *base, Error *err);
// Where option o's value lies in the settings struct at base.
void *option_field(const Option *o, const void *base);
// The index of o's string value among its choices, or -1.
int option_choice_index(const Option *o, const void *base);
// Copies option o's value from src to dst (both settings structs).
void option_copy(const Option *o, void *dst, const void *src);
// The option's value as text (for messages and comparisons).
void option_format(const Option *o, const void *base, char *buf, size_t cap);
// Whether option o has the same value (the same bytes) in a and b.
int option_same(const Option *o, const void *a, const void *b);
// The option as the command line would give it, exactly: "--lr 0.001" (the
// shortest number that reads back as the value; with float32, as its float32
// rounding), "--norm dyt" (a string quoted for the shell when it needs it),
// "--tie-embeddings". Returns 0, writing nothing, for an off flag or an unset string.
int option_flag_text(const Option *o, const void *base, int float32, char *buf, size_t cap);

#endif
